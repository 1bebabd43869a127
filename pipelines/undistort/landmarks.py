"""Face landmarks from mediapipe's face mesh (offline; models ship in the wheel).

Landmarks are float arrays [N, 3] in pixels: x, y in the image and z a relative depth
in the same pixel scale (mediapipe's convention: smaller z = closer to the camera).
mediapipe is imported lazily so the rest of the pack works without it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..common.errors import InputError

# Face-mesh indices (468-point topology).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
RIGHT_EYE_CORNERS = (33, 133)   # subject's right eye (image left)
LEFT_EYE_CORNERS = (362, 263)
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)
MIN_FACE_PX = 24  # below this face width a perspective correction moves nothing visible


@dataclass
class FaceLandmarks:
    points: np.ndarray  # [N, 3] pixels (x, y, z)

    @property
    def width(self) -> float:
        xy = self.points[:, :2]
        return float(xy[:, 0].max() - xy[:, 0].min())

    @property
    def area(self) -> float:
        xy = self.points[:, :2]
        return float(np.ptp(xy[:, 0]) * np.ptp(xy[:, 1]))


def eye_centers(points: np.ndarray) -> tuple:
    right = points[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left = points[list(LEFT_EYE_CORNERS)].mean(axis=0)
    return right, left


def interocular_px(points: np.ndarray) -> float:
    """3D distance between the eye centres in pixels (z included, so head yaw does not shrink it)."""
    right, left = eye_centers(points)
    return float(np.linalg.norm(left - right))


class FaceMeshDetector:
    """Faces as FaceLandmarks through the pack's one face finder (selfie_tools.facemesh.detect_faces:
    face mesh, then the full-range detector with tiles for small faces), so Face Landmarks and Face
    Undistort find exactly the faces Face Align Crop and Crop Region find."""

    def __init__(self, max_faces: int = 5):
        from ..selfie_tools.mediapipe_runtime import backend

        backend()  # say what to install now, not at the first image
        self.max_faces = max_faces

    def detect(self, rgb: np.ndarray) -> list:
        """All faces in a uint8 RGB image [H, W, 3], as 468-point meshes (the refined iris points dropped)."""
        from ..selfie_tools.facemesh import detect_faces

        return [FaceLandmarks(face[:468]) for face in detect_faces(rgb, self.max_faces)]


def pick_face(faces: list, face_index: int) -> Optional[FaceLandmarks]:
    """face_index < 0: the largest face; otherwise the index in left-to-right order."""
    if not faces:
        return None
    if face_index < 0:
        return max(faces, key=lambda f: f.area)
    ordered = sorted(faces, key=lambda f: float(f.points[:, 0].mean()))
    if face_index >= len(ordered):
        raise InputError(f"face_index {face_index} asked for, but only {len(ordered)} face(s) were found "
                         "(faces are numbered left to right from 0; -1 picks the largest).")
    return ordered[face_index]

"""Face landmarks from mediapipe's face mesh (offline; models ship in the wheel).

Landmarks are float arrays [N, 3] in pixels: x, y in the image and z a relative depth
in the same pixel scale (mediapipe's convention: smaller z = closer to the camera).
mediapipe is imported lazily so the rest of the pack works without it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..common.errors import InputError
from ..common.install import MEDIAPIPE_INSTALL
from ..common.images import resize_uint8

# Face-mesh indices (468-point topology).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
RIGHT_EYE_CORNERS = (33, 133)   # subject's right eye (image left)
LEFT_EYE_CORNERS = (362, 263)
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)
MIN_FACE_PX = 24  # below this face width a perspective correction moves nothing visible


def require_mediapipe():
    """Import mediapipe's legacy solutions API or say how to get it."""
    try:
        from mediapipe.python import solutions  # noqa: F401
    except Exception as exc:  # ImportError, or a protobuf mismatch surfacing as TypeError
        raise InputError(
            "Face landmarks need mediapipe 0.10.21 (its 'solutions' API ships the models offline). "
            f"Install it with: {MEDIAPIPE_INSTALL} — or connect a depth map / landmarks instead. ({exc})"
        ) from exc
    return solutions


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


def _mesh_points(result, width: int, height: int) -> list:
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], dtype=np.float64)
        faces.append(FaceLandmarks(pts[:468]))
    return faces


class FaceMeshDetector:
    """Holds mediapipe's FaceMesh (static images) and a full-range face detector for small faces."""

    def __init__(self, max_faces: int = 5, min_confidence: float = 0.5):
        solutions = require_mediapipe()
        self._solutions = solutions
        self._mesh = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                                  refine_landmarks=False, min_detection_confidence=min_confidence)
        self._min_confidence = min_confidence
        self._detector = None

    def detect(self, rgb: np.ndarray) -> list:
        """All faces in a uint8 RGB image [H, W, 3]; small faces are found through a crop."""
        height, width = rgb.shape[:2]
        faces = _mesh_points(self._mesh.process(np.ascontiguousarray(rgb)), width, height)
        if faces:
            return faces
        return self._detect_small(rgb)

    def _detect_small(self, rgb: np.ndarray) -> list:
        """Face mesh's own detector is short-range; find boxes with the full-range one, mesh each crop."""

        if self._detector is None:
            self._detector = self._solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self._min_confidence)
        height, width = rgb.shape[:2]
        found = self._detector.process(np.ascontiguousarray(rgb)).detections or []
        faces = []
        for det in found:
            box = det.location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * width, (box.ymin + box.height / 2) * height
            side = max(box.width * width, box.height * height) * 2.0
            x0, y0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
            x1, y1 = int(min(cx + side / 2, width)), int(min(cy + side / 2, height))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            scale = 256.0 / max(x1 - x0, y1 - y0)
            crop = resize_uint8(rgb[y0:y1, x0:x1], max(int((x1 - x0) * scale), 1), max(int((y1 - y0) * scale), 1))
            for face in _mesh_points(self._mesh.process(np.ascontiguousarray(crop)), crop.shape[1], crop.shape[0]):
                pts = face.points / scale
                pts[:, 0] += x0
                pts[:, 1] += y0
                faces.append(FaceLandmarks(pts))
        return faces

    def close(self):
        self._mesh.close()
        if self._detector is not None:
            self._detector.close()


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

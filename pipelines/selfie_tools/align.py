"""FFHQ face alignment (Karras et al. 2019, ffhq-dataset's recreate_aligned_images) as a crop.

The thesis aligns every face this way before undistorting it (3.4) and to cut the face
selfie I_f (3.2.1). The oriented square ("quad") comes from the eye centres and mouth
corners exactly as in the FFHQ script; here it becomes a CropGeometry so the aligned face
can be refined and pasted back. FFHQ's blurred-border padding is replaced by reflection.
"""
import numpy as np

from ..common.errors import InputError
from .crop import CropGeometry, quad_crop

# dlib / OpenPose-face 68-point layout (the first 68 of OpenPose's 70 face keypoints).
DLIB_EYE_LEFT = slice(36, 42)   # image-left eye (the subject's right)
DLIB_EYE_RIGHT = slice(42, 48)
DLIB_MOUTH_LEFT, DLIB_MOUTH_RIGHT = 48, 54


def ffhq_quad(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """The FFHQ crop square as 4 corners (top-left, bottom-left, bottom-right, top-right), pixels."""
    eye_left, eye_right = np.asarray(eye_left, float)[:2], np.asarray(eye_right, float)[:2]
    mouth_left, mouth_right = np.asarray(mouth_left, float)[:2], np.asarray(mouth_right, float)[:2]
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm < 1e-6:
        raise InputError("Degenerate face landmarks (eyes and mouth coincide); cannot align the face.")
    x /= norm
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_from_dlib68(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, float)
    if pts.shape[0] < 68:
        raise InputError(f"Expected 68 (or 70) face keypoints, got {pts.shape[0]}.")
    return ffhq_quad(pts[DLIB_EYE_LEFT, :2].mean(0), pts[DLIB_EYE_RIGHT, :2].mean(0),
                     pts[DLIB_MOUTH_LEFT], pts[DLIB_MOUTH_RIGHT])


def quad_from_mediapipe(face: np.ndarray) -> np.ndarray:
    """From a mediapipe face mesh [>=468, 3] in pixels (see facemesh.py)."""
    from .facemesh import MOUTH_LEFT, MOUTH_RIGHT, eye_centres

    right_subject, left_subject = eye_centres(face)  # image-left, image-right
    # mediapipe 61 is the image-left mouth corner, 291 the image-right one.
    return ffhq_quad(right_subject, left_subject, face[MOUTH_RIGHT], face[MOUTH_LEFT])


def align_crop(quad: np.ndarray, source_size: tuple, size: int = 512, feather: float = 0.08) -> CropGeometry:
    return quad_crop(quad, source_size, size, feather)


def face_points_from_pose_json(pose_json, index: int, face_index: int, hw: tuple) -> np.ndarray:
    """Face points [N, 3] (OpenPose face: 70, dlib layout first) of image ``index`` of a POSE_KEYPOINT list,
    in pixels of an image of size ``hw``; -1 = largest face, else the face_index-th from the left."""
    entries = pose_json if isinstance(pose_json, list) else [pose_json]
    entry = entries[min(index, len(entries) - 1)]
    height, width = int(entry.get("canvas_height", hw[0])), int(entry.get("canvas_width", hw[1]))
    faces = []
    for person in entry.get("people", []):
        flat = person.get("face_keypoints_2d")
        if flat:
            pts = np.asarray(flat, float).reshape(-1, 3)
            if pts[:, :2].max() <= 1.0:
                pts[:, 0] *= width
                pts[:, 1] *= height
            pts[:, 0] *= hw[1] / width  # keypoints drawn on another canvas size
            pts[:, 1] *= hw[0] / height
            faces.append(pts)
    if not faces:
        raise InputError(f"The face keypoints of image {index + 1} hold no face (face_keypoints_2d is empty).")
    if face_index < 0:
        return max(faces, key=lambda f: float(np.ptp(f[:, 0])))
    faces.sort(key=lambda f: float(f[:, 0].mean()))
    if face_index >= len(faces):
        raise InputError(f"face_index {face_index} but only {len(faces)} face(s) in the keypoints.")
    return faces[face_index]

"""3D face landmarks from mediapipe's face mesh, in pixel units.

A face is a float array [N, 3] of (x_px, y_px, z_px): x, y in image pixels, z the depth
relative to the head centre in the same pixel scale as x (mediapipe's convention; smaller =
nearer the camera). Faces too small for the short-range mesh detector are found with the
full-range face detector, cropped, upscaled and meshed again (the "tiny face" path).
"""
import numpy as np

from ..common.errors import InputError
from ..common.images import resize_uint8
from . import mediapipe_runtime as mpr

# Indices into mediapipe's 478-point refined mesh.
LEFT_EYE_RING = [362, 385, 387, 263, 373, 380]   # subject's left eye (image right)
RIGHT_EYE_RING = [33, 160, 158, 133, 153, 144]   # subject's right eye (image left)
MOUTH_LEFT, MOUTH_RIGHT = 291, 61
NOSE_TIP = 1
CROP_SIZE = 256  # side of the upscaled crop used for small faces


def detect_faces(rgb: np.ndarray, max_faces: int = 4) -> list:
    """All faces mediapipe finds in one uint8 RGB image, as [478, 3] pixel arrays.

    The pack's one face finder: every face node calls it, so they all find the same faces."""
    height, width = rgb.shape[:2]
    faces = [_to_pixels(f, width, height) for f in mpr.run(mpr.face_mesh(max_faces), rgb)]
    if not faces:
        faces = _faces_via_detector(rgb, max_faces)
    return faces


def _to_pixels(normalised: np.ndarray, width: int, height: int, offset=(0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    arr = np.array(normalised, dtype=np.float64)
    # z shares x's normalisation (mediapipe docs), so it scales with the width.
    arr[:, 0] = arr[:, 0] * width * scale + offset[0]
    arr[:, 1] = arr[:, 1] * height * scale + offset[1]
    arr[:, 2] = arr[:, 2] * width * scale
    return arr


def _faces_via_detector(rgb: np.ndarray, max_faces: int) -> list:
    """Small or distant faces: full-range detector boxes -> square crops -> mesh on each crop."""

    faces = []
    for cx, cy, side in _face_boxes(rgb)[:max_faces]:
        side *= 2.2  # the mesh model wants context around the face
        x0, y0 = cx - side / 2, cy - side / 2
        crop = _crop_square(rgb, x0, y0, side)
        crop = resize_uint8(crop, CROP_SIZE, CROP_SIZE)
        found = mpr.run(mpr.face_mesh(1), crop)
        if found:
            faces.append(_to_pixels(found[0], CROP_SIZE, CROP_SIZE, (x0, y0), side / CROP_SIZE))
    return faces


def _face_boxes(rgb: np.ndarray) -> list:
    """(centre x, centre y, side) of faces from the full-range detector, on the whole image and then,
    if nothing was found, on overlapping half-size tiles (the detector sees a 192 px thumbnail, so
    faces under ~6 % of the image side only show up in a tile)."""
    height, width = rgb.shape[:2]
    boxes = _detect_boxes(rgb, 0, 0)
    if not boxes:
        side = max(height, width) // 2
        for y0 in range(0, max(height - side, 0) + 1, max(side // 2, 1)):
            for x0 in range(0, max(width - side, 0) + 1, max(side // 2, 1)):
                tile = np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])
                if min(tile.shape[:2]) >= mpr.MIN_SIDE:
                    boxes += _detect_boxes(tile, x0, y0)
    return _non_overlapping(sorted(boxes, key=lambda b: -b[3]))


def _detect_boxes(rgb: np.ndarray, x0: int, y0: int) -> list:
    height, width = rgb.shape[:2]
    out = []
    for xmin, ymin, box_w, box_h, score in mpr.run(mpr.face_detection(), rgb):
        cx, cy = x0 + (xmin + box_w / 2) * width, y0 + (ymin + box_h / 2) * height
        out.append((cx, cy, max(box_w * width, box_h * height), score))
    return out


def _non_overlapping(boxes: list) -> list:
    """Drop detections whose centre lies inside a better one (tiles overlap)."""
    kept = []
    for cx, cy, side, _score in boxes:
        if all(abs(cx - kx) > ks / 2 or abs(cy - ky) > ks / 2 for kx, ky, ks in kept):
            kept.append((cx, cy, side))
    return kept


def _crop_square(rgb: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """A square crop that may extend past the border (padded by edge replication)."""

    x0i, y0i, s = int(round(x0)), int(round(y0)), max(int(round(side)), 8)
    h, w = rgb.shape[:2]
    pad = max(0, -x0i, -y0i, x0i + s - w, y0i + s - h)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else rgb
    return np.ascontiguousarray(padded[y0i + pad:y0i + pad + s, x0i + pad:x0i + pad + s])


def face_width(face: np.ndarray) -> float:
    return float(np.ptp(face[:, 0]))


def pick_face(faces: list, index: int, what: str = "image") -> np.ndarray:
    """-1: the largest face; otherwise the index-th face from the left."""
    if not faces:
        raise InputError(f"No face was found in the {what}. Use a photo where the face is clearly visible "
                         "(faces down to ~20 px wide are searched), or connect face keypoints from another node.")
    if index < 0:
        return max(faces, key=face_width)
    ordered = sorted(faces, key=lambda f: float(f[:, 0].mean()))
    if index >= len(ordered):
        raise InputError(f"face_index is {index} but only {len(ordered)} face(s) were found in the {what} "
                         "(0 = leftmost; -1 = largest).")
    return ordered[index]


def eye_centres(face: np.ndarray):
    """(subject's right eye = image left, subject's left eye = image right) centres, [3] each."""
    return face[RIGHT_EYE_RING].mean(axis=0), face[LEFT_EYE_RING].mean(axis=0)

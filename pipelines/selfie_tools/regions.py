"""Where to crop: face, hands or shoes boxes from mediapipe, or the box of any MASK."""
import numpy as np

from ..common.errors import InputError
from .crop import box_of_mask
from .person import FEET_POINTS, LEFT_HAND, RIGHT_HAND, detect_person, lowest_part_box, points_box

REGIONS = ("mask", "face", "left hand", "right hand", "both hands", "shoes")


def region_box(region: str, rgb: np.ndarray, mask: np.ndarray = None, face_index: int = -1):
    """(x0, y0, x1, y1) in pixels for one uint8 RGB image; InputError if the region is not found."""
    if region == "mask":
        if mask is None:
            raise InputError("Region 'mask' needs a MASK connected.")
        box = box_of_mask(mask)
        if box is None:
            raise InputError("The region mask is empty.")
        return box
    if region == "face":
        return _face_box(rgb, face_index)
    if region in ("left hand", "right hand", "both hands", "shoes"):
        return _body_box(region, rgb)
    raise InputError(f"Unknown region {region!r}; use one of {REGIONS}.")


def _face_box(rgb: np.ndarray, face_index: int):
    from .facemesh import detect_faces, pick_face

    face = pick_face(detect_faces(rgb, max_faces=max(4, face_index + 1)), face_index)
    x0, y0 = face[:, :2].min(0)
    x1, y1 = face[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _body_box(region: str, rgb: np.ndarray):
    person = detect_person(rgb)
    lm = person.landmarks
    if region == "shoes":
        box = None if lm is None else points_box(lm, FEET_POINTS, pad=0.25)
        if box is None:  # feet hidden from the pose model: the lowest part of the person mask
            box = lowest_part_box(person.mask)
        if box is None:
            raise InputError("No person (and so no shoes) was found in the image.")
        return box
    if lm is None:
        raise InputError(f"No person was found, so there is no {region} to crop.")
    indices = {"left hand": LEFT_HAND, "right hand": RIGHT_HAND, "both hands": LEFT_HAND + RIGHT_HAND}[region]
    box = points_box(lm, indices, pad=0.4)
    if box is None:
        raise InputError(f"The {region} is not visible in the image.")
    # A hand is larger than the spread of its 4 pose keypoints: at least ~30 % of the shoulder width.
    min_side = 0.3 * float(np.hypot(*(lm[11, :2] - lm[12, :2])))
    return _at_least(box, min_side)


def _at_least(box, side: float):
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max(x1 - x0, side), max(y1 - y0, side)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

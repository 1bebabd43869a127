"""Where to crop: face, hands or shoes boxes from mediapipe, or the box of any MASK."""
import numpy as np

from ..common.errors import InputError
from .crop import box_of_mask
from .person import FEET_POINTS, LEFT_HAND, RIGHT_HAND, detect_person, lowest_part_box, points_box

REGIONS = ("mask", "face", "left hand", "right hand", "both hands", "shoes")


MIN_VISIBLE_PX = 4  # a region with less than this much of its box inside the image is not in the photo


def region_box(region: str, rgb: np.ndarray, mask: np.ndarray = None, face_index: int = -1):
    """(x0, y0, x1, y1) in pixels, inside the image, for one uint8 RGB image; InputError if the region
    is not found or lies outside the frame (pose keypoints are predicted beyond the border too)."""
    box = _region_box(region, rgb, mask, face_index)
    height, width = rgb.shape[:2]
    clipped = clip_box(box, height, width)
    if clipped is None:
        raise InputError(f"The {region} lies outside the image (box {tuple(round(v) for v in box)} in a "
                         f"{width}x{height} image); use a photo that shows it, or region 'mask' with a mask.")
    return clipped


def clip_box(box, height: int, width: int):
    """The part of a box inside the image, or None when less than MIN_VISIBLE_PX of it is."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 - x0 < MIN_VISIBLE_PX or y1 - y0 < MIN_VISIBLE_PX:
        return None
    return float(x0), float(y0), float(x1), float(y1)


def _region_box(region: str, rgb: np.ndarray, mask, face_index: int):
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
        return _shoes_box(person, *rgb.shape[:2])
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


def _shoes_box(person, height: int, width: int):
    """Feet keypoints that lie on the person; else, when the whole person is in the frame, the lowest
    part of their mask. The pose model also predicts feet below the border or on empty floor, with
    a visibility that can pass 0.5, so at least half of the feet points must sit on the mask."""
    lm = person.landmarks
    if lm is None:
        raise InputError("No person (and so no shoes) was found in the image.")
    on_person = [i for i in FEET_POINTS if 0 <= lm[i, 0] < width and 0 <= lm[i, 1] < height
                 and person.mask[int(lm[i, 1]), int(lm[i, 0])] > 0.5]
    box = points_box(lm, on_person, pad=0.25) if 2 * len(on_person) >= len(FEET_POINTS) else None
    if box is not None:
        return box
    ys = np.nonzero(person.mask > 0.5)[0]
    if len(ys) and ys.max() < height - 2:  # the person ends above the bottom edge: their feet are in the photo
        return lowest_part_box(person.mask)
    raise InputError("The shoes are not in the image: the person runs off the bottom edge and no feet are "
                     "visible. Use a full-body photo, or region 'mask' with a mask of the shoes.")

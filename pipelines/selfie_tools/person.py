"""Person mask, body keypoints and coarse body parts from mediapipe (offline fallback).

mediapipe's pose model (BlazePose, 33 keypoints, one person per image) gives keypoints and a
person segmentation; the thesis uses a human-parsing network (M2FP) instead. Here pixels
of the person mask are labelled by their nearest skeleton bone into four coarse parts
(head, upper body incl. arms, lower body, feet): enough for reference ranking (3.5.3) and
for face / hands / shoes crop regions, not a substitute for a real parser.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import mediapipe_runtime as mpr
from .ranking import SELFIE_MIN_PIXELS

# Coarse part labels of the mediapipe fallback parser.
BACKGROUND, HEAD, UPPER, LOWER, FEET = 0, 1, 2, 3, 4
PART_NAMES = {BACKGROUND: "background", HEAD: "head", UPPER: "upper body", LOWER: "lower body", FEET: "feet"}

# BlazePose bones by coarse part.
PART_BONES = {
    HEAD: [(0, 2), (0, 5), (2, 7), (5, 8), (9, 10), (0, 9), (0, 10)],
    UPPER: [(11, 12), (11, 23), (12, 24), (23, 24), (11, 13), (13, 15), (12, 14), (14, 16),
            (15, 17), (15, 19), (16, 18), (16, 20)],
    LOWER: [(23, 25), (25, 27), (24, 26), (26, 28)],
    FEET: [(27, 29), (29, 31), (27, 31), (28, 30), (30, 32), (28, 32)],
}
LEFT_HAND = [15, 17, 19, 21]   # subject's left wrist, pinky, index, thumb
RIGHT_HAND = [16, 18, 20, 22]
FEET_POINTS = [27, 28, 29, 30, 31, 32]


@dataclass
class PersonResult:
    mask: np.ndarray                   # [H, W] float 0..1; all zero when no person was found
    landmarks: Optional[np.ndarray]    # [33, 4] (x_px, y_px, z, visibility) or None
    width: int
    height: int

    @property
    def found(self) -> bool:
        return self.landmarks is not None

    def summary(self, threshold: float = 0.5) -> str:
        if not self.found:
            return ("no person found by the pose model: person_mask is empty and pose_keypoint has no people "
                    "(use a photo where the person is visible, or a human-parsing mask from another node)")
        return f"person found, mask covers {(self.mask > threshold).mean():.0%} of the image"


def detect_person(rgb: np.ndarray) -> PersonResult:
    """Pose + segmentation for one uint8 RGB image.

    The person mask is only trusted with a pose: on its own, mediapipe's segmentation calls a cat
    91 % person and a coffee cup 23 % (skimage chelsea / coffee). No pose -> empty mask, landmarks None.
    """
    height, width = rgb.shape[:2]
    result = mpr.run(mpr.pose(), rgb)
    if result.landmarks is None:
        return PersonResult(np.zeros((height, width), np.float32), None, width, height)
    lm = result.landmarks * np.array([width, height, width, 1.0])
    mask = result.mask
    mask = np.zeros((height, width), np.float32) if mask is None else mask.astype(np.float32)
    return PersonResult(mask, lm, width, height)


def closeup_mask(rgb: np.ndarray) -> np.ndarray:
    """Selfie segmentation without a pose [H, W] 0..1: for close-up selfies the pose model cannot parse.
    Unconfirmed (it also fires on animals and objects), so only the ranking's label sets use it."""
    seg = mpr.run(mpr.selfie_segmentation(), rgb)
    return np.zeros(rgb.shape[:2], np.float32) if seg is None else seg.astype(np.float32)


def normalised_landmarks(person: PersonResult) -> Optional[np.ndarray]:
    """[33, 4] with x, y back in 0..1 (what pose.blazepose_to_openpose18 takes)."""
    if person.landmarks is None:
        return None
    lm = person.landmarks.copy()
    lm[:, 0] /= person.width
    lm[:, 1] /= person.height
    return lm


def coarse_parts(person: PersonResult, threshold: float = 0.5, min_visibility: float = 0.3) -> np.ndarray:
    """[H, W] uint8 labels (BACKGROUND/HEAD/UPPER/LOWER/FEET): each person pixel takes its nearest bone's part."""
    inside = person.mask > threshold
    labels = np.zeros(inside.shape, np.uint8)
    if person.landmarks is None or not inside.any():
        return labels
    ys, xs = np.nonzero(inside)
    pix = np.stack([xs, ys], 1).astype(np.float32) + 0.5
    best = np.full(len(xs), np.inf, np.float32)
    part_of = np.zeros(len(xs), np.uint8)
    lm = person.landmarks
    for part, bones in PART_BONES.items():
        for a, b in bones:
            if min(lm[a, 3], lm[b, 3]) < min_visibility:
                continue
            d = _distance_to_segment(pix, lm[a, :2], lm[b, :2])
            closer = d < best
            best[closer] = d[closer]
            part_of[closer] = part
    labels[ys, xs] = part_of
    return labels


def _distance_to_segment(points: np.ndarray, a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-6), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def points_box(landmarks: np.ndarray, indices, min_visibility: float = 0.3, pad: float = 0.0):
    """Box (x0, y0, x1, y1) around visible landmarks, grown by ``pad`` of its larger side; None if none visible."""
    sel = [i for i in indices if landmarks[i, 3] >= min_visibility]
    if not sel:
        return None
    pts = landmarks[sel, :2]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    side = max(x1 - x0, y1 - y0, 1.0)
    return x0 - pad * side, y0 - pad * side, x1 + pad * side, y1 + pad * side


def lowest_part_box(mask: np.ndarray, fraction: float = 0.12, threshold: float = 0.5):
    """Box around the lowest ``fraction`` of a person mask's height (where the shoes are)."""
    ys, xs = np.nonzero(mask > threshold)
    if len(ys) == 0:
        return None
    top, bottom = ys.min(), ys.max() + 1
    cut = bottom - max((bottom - top) * fraction, 1.0)
    keep = ys >= cut
    return float(xs[keep].min()), float(cut), float(xs[keep].max() + 1), float(bottom)


def mediapipe_label_sets(photos_uint8, upper=None, lower=None, shoes=None, min_pixels: int = SELFIE_MIN_PIXELS):
    """Offline fallback for reference ranking with the 'mediapipe coarse parts' scheme.

    Returns (selfie label set, [coarse part map per photo]). A selfie counts for its part when
    the part (or, for close-ups that defeat the pose model, the person mask) covers at least
    ``min_pixels``; mediapipe cannot see shoe close-ups, so a given shoes selfie always counts.
    """
    selfie_set = set()
    for selfie, part in ((upper, UPPER), (lower, LOWER)):
        if selfie is None:
            continue
        found = detect_person(selfie)
        person_pixels = (found.mask if found.found else closeup_mask(selfie)) > 0.5
        if (coarse_parts(found) == part).sum() >= min_pixels or person_pixels.sum() >= min_pixels:
            selfie_set.add(part)
    if shoes is not None:
        selfie_set.add(FEET)
    return selfie_set, [coarse_parts(detect_person(frame)) for frame in photos_uint8]

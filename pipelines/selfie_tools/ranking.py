"""Automatic target-pose selection by clothing labels (thesis 3.5.3).

For the upper-body, lower-body and shoes selfies, the label sets P_u, P_l, P_s keep the
labels of the matching category that cover at least 21 pixels; for each candidate photo,
P_r keeps the upper/lower/shoes labels that cover at least 5 pixels. A candidate's score is
|P_r ∩ (P_u ∪ P_l ∪ P_s)| and candidates are ranked by it (ties keep their input order).

Label maps may come from any human parser: an index map (grey image whose values*255 are
label ids) or a colour map in the parsers' usual PASCAL-VOC palette (SCHP, M2FP demos).
Label schemes give each id its category: CIHP (M2FP's 20 classes), LIP, ATR, and the coarse
mediapipe fallback of person.py.
"""
from dataclasses import dataclass

import numpy as np

from ..common.errors import InputError

SELFIE_MIN_PIXELS = 21
REFERENCE_MIN_PIXELS = 5

# label id sets per category for each scheme
LABEL_SCHEMES = {
    # CIHP (M2FP): 5 upper-clothes, 6 dress, 7 coat, 8 socks, 9 pants, 11 scarf, 12 skirt, 18/19 shoes
    "CIHP (M2FP)": {"upper": {5, 6, 7, 11}, "lower": {6, 9, 12}, "shoes": {8, 18, 19}, "classes": 20},
    # LIP: as CIHP but 10 = jumpsuits (upper and lower)
    "LIP": {"upper": {5, 6, 7, 10, 11}, "lower": {6, 9, 10, 12}, "shoes": {8, 18, 19}, "classes": 20},
    # ATR: 4 upper-clothes, 5 skirt, 6 pants, 7 dress, 8 belt, 9/10 shoes, 17 scarf
    "ATR": {"upper": {4, 7, 17}, "lower": {5, 6, 7, 8}, "shoes": {9, 10}, "classes": 18},
    # person.py's coarse parts: 2 upper body, 3 lower body, 4 feet
    "mediapipe coarse parts": {"upper": {2}, "lower": {3}, "shoes": {4}, "classes": 5},
}
CATEGORIES = ("upper", "lower", "shoes")


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL-VOC colour map human parsers use to draw label ids: [n, 3] uint8."""
    palette = np.zeros((n, 3), np.uint8)
    for label in range(n):
        c, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[label] = (r, g, b)
    return palette


def labels_from_image(rgb_float: np.ndarray, classes: int) -> np.ndarray:
    """[H, W, 3] 0..1 label picture -> [H, W] int label ids (index map or VOC colours)."""
    arr = np.round(np.asarray(rgb_float, np.float64) * 255.0).astype(np.int64)
    grey = (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    if grey and arr[..., 0].max() < classes:
        return arr[..., 0]
    palette = voc_palette(classes).astype(np.int64)
    # nearest palette colour per distinct colour (maps may have been resized with interpolation)
    keys = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    colours, inverse = np.unique(keys.reshape(-1), return_inverse=True)
    rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], 1)
    nearest = ((rgb[:, None, :] - palette[None, :, :]) ** 2).sum(-1).argmin(1)
    return nearest[inverse].reshape(arr.shape[:2])


def label_set(labels: np.ndarray, allowed: set, min_pixels: int) -> set:
    ids, counts = np.unique(labels, return_counts=True)
    return {int(i) for i, c in zip(ids, counts) if c >= min_pixels and int(i) in allowed}


def selfie_labels(upper=None, lower=None, shoes=None, scheme: str = "CIHP (M2FP)") -> set:
    """P_u ∪ P_l ∪ P_s from the selfies' label maps ([H, W] ids; any may be None)."""
    cats = _scheme(scheme)
    out = set()
    for cat, labels in zip(CATEGORIES, (upper, lower, shoes)):
        if labels is not None:
            out |= label_set(labels, cats[cat], SELFIE_MIN_PIXELS)
    return out


def reference_labels(labels: np.ndarray, scheme: str = "CIHP (M2FP)") -> set:
    cats = _scheme(scheme)
    allowed = cats["upper"] | cats["lower"] | cats["shoes"]
    return label_set(labels, allowed, REFERENCE_MIN_PIXELS)


@dataclass
class Ranking:
    order: list      # candidate indices, best first
    scores: list     # score per candidate (input order)
    matched: list    # matched label ids per candidate (input order)

    def summary(self, scheme: str) -> str:
        lines = [f"rank {r + 1}: photo {i + 1}, score {self.scores[i]}, shared labels {sorted(self.matched[i])}"
                 for r, i in enumerate(self.order)]
        return f"scheme {scheme}\n" + "\n".join(lines)


def rank_references(selfie_set: set, candidate_labels: list, scheme: str = "CIHP (M2FP)") -> Ranking:
    if not selfie_set:
        raise InputError("The selfies' label maps hold no upper-body, lower-body or shoes labels of at least "
                         f"{SELFIE_MIN_PIXELS} pixels (label scheme '{scheme}'): check the parser and the scheme.")
    matched = [reference_labels(lab, scheme) & selfie_set for lab in candidate_labels]
    scores = [len(m) for m in matched]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable: ties keep input order
    return Ranking(order, scores, matched)


def _scheme(name: str) -> dict:
    if name not in LABEL_SCHEMES:
        raise InputError(f"Unknown label scheme {name!r}; use one of {list(LABEL_SCHEMES)}.")
    return LABEL_SCHEMES[name]

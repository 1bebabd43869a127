"""Pinhole geometry of the near (selfie) and far camera, thesis eq. 3.3 (f = d * f0).

Both cameras look down the same optical axis through the image centre. The far camera
sits ``k = far / near`` times further away with its focal length scaled by the same k,
so everything on the reference plane (the eyes' depth, where eq. 3.3 keeps the eyes
fixed) keeps its pixel position and size. A point at depth Z = d (1 + rho) then moves
radially about the principal point by

    s(rho) = k (1 + rho) / (k + rho)        (q - c = s * (p - c))

Only rho = (Z - d) / d matters. From mesh depths in pixels (z_px, the image's pixel
scale at the reference plane) rho = z_px / f, so only the near focal length in pixels is
needed; it comes from a field of view, or from a user distance and the
interocular prior below.

A distance estimated from the field of view assumes an uncropped photo. A tight face crop
breaks that (its true FOV is a fraction of the phone's): the estimate comes out nearer than
an arm can hold a phone, and the warp tears. So the estimate is bounded by SELFIE_RANGE_M,
an arm's-length prior (the thesis' near renders span d to 1.9 d, i.e. ~0.3-0.6 m for a
~0.3 m selfie): below it the focal length is re-derived from the bound, and any distance
outside the range is reported.
"""
import math
from dataclasses import dataclass

import numpy as np

# Anthropometric prior: mean adult interpupillary distance (Dodgson 2004: 63 mm, sd ~3.5 mm).
INTEROCULAR_M = 0.063
DEFAULT_FOV_DEG = 70.0  # typical phone front camera across the long side
DEFAULT_FAR_M = 3.0
SELFIE_RANGE_M = (0.25, 0.6)  # camera-to-eyes distances a hand-held selfie can have


@dataclass
class NearCamera:
    focal_px: float
    center: tuple  # (cx, cy) in pixels
    distance_m: float  # camera to the reference (eye) plane
    note: str = ""  # why the distance was bounded, or that it lies outside the selfie range

    def ratio_k(self, far_m: float) -> float:
        return max(far_m / self.distance_m, 1.0)


def focal_from_fov(fov_deg: float, width: int, height: int) -> float:
    """Focal length in pixels for a horizontal-or-vertical FOV measured across the long side."""
    fov = min(max(float(fov_deg), 1.0), 170.0)
    return (max(width, height) / 2.0) / math.tan(math.radians(fov) / 2.0)


def near_camera(interocular_px: float, width: int, height: int, distance_m: float = 0.0,
                fov_deg: float = DEFAULT_FOV_DEG, interocular_m: float = INTEROCULAR_M) -> NearCamera:
    """Camera of a selfie from the eye distance in pixels.

    distance_m > 0: the user knows the distance; the focal length follows from the prior
    (works for crops, whose original FOV is unknown). Otherwise the FOV gives the focal
    length and the prior gives the distance, bounded below by SELFIE_RANGE_M[0] (see above).
    """
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    if interocular_px <= 0:
        raise ValueError("interocular distance must be positive")
    near, far = SELFIE_RANGE_M
    if distance_m > 0:
        focal = interocular_px * distance_m / interocular_m
        return NearCamera(focal, center, float(distance_m), _range_note(distance_m, "the given selfie_distance_m"))
    focal = focal_from_fov(fov_deg, width, height)
    distance = focal * interocular_m / interocular_px
    if distance < near:
        note = (f"the face fills too much of the frame for a {fov_deg:.0f} deg photo ({distance:.2f} m; the image "
                f"is probably cropped): used {near:.2f} m, the nearest selfie distance; set selfie_distance_m "
                "if you know it")
        return NearCamera(interocular_px * near / interocular_m, center, near, note)
    return NearCamera(focal, center, distance, _range_note(distance, f"estimated from fov_degrees={fov_deg:.0f}"))


def _range_note(distance_m: float, source: str) -> str:
    near, far = SELFIE_RANGE_M
    if near <= distance_m <= far:
        return ""
    return (f"warning: {distance_m:.2f} m ({source}) is outside the usual selfie range {near:.2f}-{far:.2f} m; "
            "check selfie_distance_m / fov_degrees")


def radial_scale(rho, k: float):
    """s(rho) above; works on numpy arrays and torch tensors."""
    return k * (1.0 + rho) / (k + rho)


def project_far(points_px: np.ndarray, rho: np.ndarray, camera: NearCamera, far_m: float) -> np.ndarray:
    """Where near-image points [N, 2] with depth ratios [N] land in the far image (exact eq. 3.3 model)."""
    k = camera.ratio_k(far_m)
    c = np.asarray(camera.center, dtype=np.float64)
    s = radial_scale(np.asarray(rho, dtype=np.float64), k)[:, None]
    return c + (np.asarray(points_px, dtype=np.float64)[:, :2] - c) * s

"""Background retrieval by ground-plane orientation (thesis 4.4): fit the floor plane in
a depth map (RANSAC over back-projected floor pixels), rank candidate backgrounds by the
angle between their floor normal and the motion's original one, and place a pose
sequence so its feet stand on the chosen floor."""
import numpy as np

from ..common import InputError
from ..common.pose import openpose_json, people_from_json

FEET = (10, 13)  # OpenPose-18 ankles


def back_project(depth: np.ndarray, mask: np.ndarray, fov_deg: float, inverse: bool) -> np.ndarray:
    """Camera-space points [N, 3] (x right, y up, z forward) of the masked pixels."""
    h, w = depth.shape
    ys, xs = np.nonzero(mask > 0.5)
    d = depth[ys, xs].astype(np.float64)
    if inverse:  # depth estimators output relative inverse depth (brighter = nearer)
        d = 1.0 / np.maximum(d, 1e-3)
    f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
    return np.stack([(xs - w / 2) * d / f, -(ys - h / 2) * d / f, d], axis=1)


def fit_plane_ransac(points: np.ndarray, iterations: int = 200, threshold: float = None,
                     seed: int = 0) -> tuple:
    """Unit normal (pointing up, y > 0) and inlier ratio of the dominant plane."""
    if len(points) < 3:
        raise InputError("The floor mask covers fewer than 3 pixels; mark the floor in the mask.")
    rng = np.random.default_rng(seed)
    threshold = threshold or 0.01 * float(np.ptp(points[:, 2]) + 1e-6)
    best_inliers = None
    for _ in range(iterations):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        inliers = np.abs((points - a) @ n) < threshold
        if best_inliers is None or inliers.sum() > best_inliers.sum():
            best_inliers = inliers
    if best_inliers is None:
        raise InputError("The floor points are collinear; no plane can be fitted.")
    # refine on the inliers: the smallest principal direction
    inl = points[best_inliers]
    normal = np.linalg.svd(inl - inl.mean(0), full_matrices=False)[2][-1]
    if normal[1] < 0:
        normal = -normal
    return normal, float(best_inliers.mean())


def ground_normal(depth: np.ndarray, floor_mask: np.ndarray, fov_deg: float = 60.0, inverse: bool = True) -> np.ndarray:
    if depth.shape != floor_mask.shape:
        raise InputError(f"The depth map is {depth.shape[1]}x{depth.shape[0]} but the floor mask is "
                         f"{floor_mask.shape[1]}x{floor_mask.shape[0]}; they must match.")
    pts = back_project(depth, floor_mask, fov_deg, inverse)
    if len(pts) > 20000:  # RANSAC needs no more; keeps it fast on big images
        pts = pts[np.random.default_rng(0).choice(len(pts), 20000, replace=False)]
    return fit_plane_ransac(pts)[0]


def angle_deg(n1, n2) -> float:
    c = float(np.clip(np.dot(n1, n2) / (np.linalg.norm(n1) * np.linalg.norm(n2)), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def rank_backgrounds(reference_normal, candidate_normals: list) -> list:
    """Candidate indices, closest floor orientation first, with their angles."""
    angles = [angle_deg(reference_normal, n) for n in candidate_normals]
    order = np.argsort(angles, kind="stable")
    return [(int(i), angles[i]) for i in order]


def place_on_ground(poses: list, floor_mask: np.ndarray, height_fraction: float = 0.6) -> list:
    """Scale and translate a POSE_KEYPOINT sequence (one transform for all frames, so the
    motion is unchanged) so the person is ``height_fraction`` of the image tall in the
    first frame and the lowest feet of the sequence stand on the floor mask's centre."""
    h, w = floor_mask.shape
    ys, xs = np.nonzero(floor_mask > 0.5)
    if len(ys) == 0:
        raise InputError("The floor mask is empty; mark the floor to stand the person on.")
    frames = [people_from_json(p) for p in poses]
    if not frames or not frames[0]:
        raise InputError("The pose sequence is empty or its first frame has no person.")
    first = frames[0][0]
    visible = first[first[:, 2] > 0]
    height = np.ptp(visible[:, 1]) if len(visible) > 1 else 1.0
    scale = height_fraction * h / max(height, 1e-6)
    feet = [kp[list(FEET)] for people in frames for kp in people[:1]]
    seen = [f[f[:, 2] > 0] for f in feet]  # hidden joints are stored as (0, 0, 0)
    if not any(len(f) for f in seen):
        raise InputError("No frame shows the ankles; the poses cannot be stood on the floor.")
    feet_y = max(f[:, 1].max() for f in seen if len(f))
    first_feet = seen[0] if len(seen[0]) else next(f for f in seen if len(f))
    feet_x = first_feet[:, 0].mean()
    target = np.array([np.median(xs), np.median(ys)])
    offset = target - scale * np.array([feet_x, feet_y])
    out = []
    for people in frames:
        placed = []
        for kp in people:
            kp = kp.copy()
            seen = kp[:, 2] > 0
            kp[seen, :2] = kp[seen, :2] * scale + offset
            placed.append(kp)
        out.append(openpose_json(placed, w, h))
    return out

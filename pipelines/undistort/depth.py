"""Dense depth-ratio fields rho = (Z - d) / d on a working grid.

Inside the face the field interpolates the mesh linearly over its Delaunay triangles
(exact at every landmark). Outside, the nearest face value fades to 0 over a margin
proportional to the face width: rho = 0 is the reference plane, which the warp leaves in
place, so the background keeps its own plane and does not zoom. Hair and ears beyond the
mesh follow the fade, not a head model.
"""
import numpy as np

from ..common.images import mask_box, resize_area
from .landmarks import FACE_OVAL, eye_centers

POLYGON_SUPERSAMPLING = 4  # samples per pixel side for the anti-aliased face-oval mask
# the fade outside the face is computed on cells of about 1/16 margin and interpolated (bench/undistort.py: the
# same true-depth render error, 0.660 px, as on every cell)
FADE_CELLS_PER_MARGIN = 16
WORK_SIDE = 256  # long side of the depth grid (bench/undistort.py synthetic error at 512²: 0.72 px; 0.78 px at 128)


def work_shape(height: int, width: int, side: int = None) -> tuple:
    scale = min(1.0, (side or WORK_SIDE) / max(height, width))
    return max(int(round(height * scale)), 2), max(int(round(width * scale)), 2)


def grid_centers(height: int, width: int, h: int, w: int) -> tuple:
    """Full-resolution pixel coordinates of the working grid's cell centres (align_corners=False)."""
    xs = (np.arange(w) + 0.5) * width / w - 0.5
    ys = (np.arange(h) + 0.5) * height / h - 0.5
    return xs, ys


def landmark_rho(points: np.ndarray, focal_px: float) -> np.ndarray:
    """Depth ratio of each landmark relative to the eye plane: z_px / f."""
    right, left = eye_centers(points)
    z_ref = (right[2] + left[2]) / 2.0
    return (points[:, 2] - z_ref) / focal_px


def face_polygon_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled face-oval polygon as a float mask [H, W] at full resolution, anti-aliased by drawing it
    at 4x4 supersampling and averaging each pixel's 16 samples. Only the oval's pixel box is drawn (a
    whole-pixel shift of the polygon shifts its drawing by the same pixels)."""
    from PIL import Image, ImageDraw

    ss = POLYGON_SUPERSAMPLING
    oval = points[FACE_OVAL, :2]
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in oval.min(axis=0))
    x1, y1 = (min(int(np.ceil(v)) + 2, n) for v, n in zip(oval.max(axis=0), (width, height)))
    mask = np.zeros((height, width), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:
        return mask
    canvas = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
    # pixel centres are at integer coordinates in both grids: x -> (x + 0.5) * ss - 0.5
    corners = (oval - (x0, y0) + 0.5) * ss - 0.5
    ImageDraw.Draw(canvas).polygon([tuple(c) for c in corners], fill=255)
    mask[y0:y1, x0:x1] = np.asarray(canvas.reduce(ss), dtype=np.float32) / 255.0
    return mask


def rho_field_from_landmarks(points: np.ndarray, rho: np.ndarray, height: int, width: int,
                             falloff: float = 0.35) -> np.ndarray:
    """Dense rho [h, w] on the working grid from landmarks [N, >=2] and their rho [N]."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay

    h, w = work_shape(height, width)
    xs, ys = grid_centers(height, width, h, w)
    xy = points[:, :2]
    field = np.full((h, w), np.nan)
    # Only evaluate inside the landmarks' bounding box (the hull lies within it).
    j0, j1 = np.searchsorted(xs, xy[:, 0].min()), np.searchsorted(xs, xy[:, 0].max(), side="right")
    i0, i1 = np.searchsorted(ys, xy[:, 1].min()), np.searchsorted(ys, xy[:, 1].max(), side="right")
    if j1 > j0 and i1 > i0:
        gx, gy = np.meshgrid(xs[j0:j1], ys[i0:i1])
        interp = LinearNDInterpolator(Delaunay(xy), rho, fill_value=np.nan)
        field[i0:i1, j0:j1] = interp(gx, gy)
    face_width_work = np.ptp(xy[:, 0]) * w / width
    return _fade_outside(field, margin=max(falloff * face_width_work, 1.0))


def _fade_outside(field: np.ndarray, margin: float) -> np.ndarray:
    """Fill NaNs with the nearest inside value times a Gaussian fade of the distance."""
    inside = ~np.isnan(field)
    # The fade is 0 beyond 3 margins and the blur below reaches 1 margin: only the box of the inside grown
    # by 4 margins can be non-zero, and working on it gives the same values (it saves most of the grid). Its
    # corner is put on the coarse cells _fade_box samples, so that they are those of the whole grid.
    box = mask_box(inside, int(np.ceil(4 * margin)) + 2)
    out = np.zeros_like(field)
    if box is None:
        return out
    step = _fade_step(margin)
    y0, y1, x0, x1 = box
    y0, x0 = y0 - y0 % step, x0 - x0 % step
    out[y0:y1, x0:x1] = _fade_box(field[y0:y1, x0:x1], inside[y0:y1, x0:x1], margin)
    return out


def _fade_step(margin: float) -> int:
    """Grid step of the fade's coarse cells: it varies over a margin, so FADE_CELLS_PER_MARGIN cells per
    margin resolve it (and the distance transform and blurs cost 1 / step^2)."""
    return max(1, int(margin // FADE_CELLS_PER_MARGIN))


def _fade_box(field: np.ndarray, inside: np.ndarray, margin: float) -> np.ndarray:
    """The fade on every ``step``-th cell (the inside sampled there too), linearly interpolated to the grid;
    the inside keeps its own values."""
    step = _fade_step(margin)
    if step == 1:
        return np.where(inside, field, _fade_values(field, inside, margin))
    first = step // 2
    coarse = _fade_values(field[first::step, first::step], inside[first::step, first::step], margin / step)
    rows, cols = (_interpolation_matrix(n, step, first, c) for n, c in zip(field.shape, coarse.shape))
    smooth = rows @ coarse @ cols.T
    smooth[np.abs(smooth) < 1e-6] = 0.0
    return np.where(inside, field, smooth)


def _interpolation_matrix(size: int, step: int, first: int, coarse_size: int) -> np.ndarray:
    """[size, coarse_size] linear interpolation from samples at first + i * step (constant past the ends)."""
    at = np.clip((np.arange(size) - first) / step, 0, coarse_size - 1)
    lo = np.minimum(np.floor(at).astype(int), max(coarse_size - 2, 0))
    frac = at - lo
    matrix = np.zeros((size, coarse_size))
    matrix[np.arange(size), lo] = 1.0 - frac
    if coarse_size > 1:
        matrix[np.arange(size), lo + 1] += frac
    return matrix


def _fade_values(field: np.ndarray, inside: np.ndarray, margin: float) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    if not inside.any():
        return np.zeros_like(field)
    dist, (ii, jj) = distance_transform_edt(~inside, return_indices=True)
    # Gaussian fade, cut at 3 margins (e^-9: a step far below a pixel) so the far background is exact.
    outside = np.where(dist < 3 * margin, field[ii, jj] * np.exp(-(dist / margin) ** 2), 0.0)
    # Nearest-value fill has Voronoi creases; a blur of the outside values only (normalised
    # convolution, so the face's own interior does not leak into its border) smooths them.
    sigma = max(margin / 4.0, 0.5)
    weight = (~inside).astype(np.float32)
    num = gaussian_filter(np.where(inside, 0.0, outside).astype(np.float32), sigma, mode="mirror", truncate=4.0)
    den = gaussian_filter(weight, sigma, mode="mirror", truncate=4.0)
    smooth = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0).astype(np.float64)
    smooth[np.abs(smooth) < 1e-6] = 0.0
    return smooth


def rho_field_from_depth(depth: np.ndarray, face_mask: np.ndarray, points, focal_px: float,
                         is_disparity: bool = True, face_depth_m: float = 0.10,
                         distance_m: float = 0.3) -> np.ndarray:
    """rho [h, w] from a relative depth map [H, W] (e.g. a monocular depth node's output).

    With landmarks the map is fitted to their rho by least squares (scale and offset), so
    only its shape is used. Without, its 2nd..98th percentile inside the face is taken as
    ``face_depth_m`` (prior: nose tip to cheek edge ~10 cm) at ``distance_m``.
    Outside the face mask rho fades to the reference plane like the mesh path.
    """
    height, width = depth.shape
    h, w = work_shape(height, width)
    d = resize_area(depth, w, h).astype(np.float64)
    m = resize_area(face_mask, w, h) > 0.5
    sign = -1.0 if is_disparity else 1.0  # disparity: bigger = closer = smaller rho
    if points is not None:
        rho_pts = landmark_rho(points, focal_px)
        xs = np.clip(np.round((points[:, 0] + 0.5) * w / width - 0.5).astype(int), 0, w - 1)
        ys = np.clip(np.round((points[:, 1] + 0.5) * h / height - 0.5).astype(int), 0, h - 1)
        a = np.stack([d[ys, xs], np.ones(len(xs))], axis=1)
        (gain, offset), *_ = np.linalg.lstsq(a, rho_pts, rcond=None)
        rho = gain * d + offset
    else:
        vals = d[m] if m.any() else d.reshape(-1)
        lo, hi = np.percentile(vals, [2, 98])
        span = max(hi - lo, 1e-6)
        near_val = hi if is_disparity else lo  # the nose tip
        rho = sign * (d - near_val) / span * (face_depth_m / distance_m)
        rho -= np.median(rho[m]) if m.any() else 0.0  # reference plane = the face's middle depth
    field = np.where(m, rho, np.nan)
    face_width = (np.ptp(np.nonzero(m)[1]) if m.any() else w / 3)
    return _fade_outside(field, margin=max(0.35 * face_width, 1.0))

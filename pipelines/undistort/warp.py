"""Dense backward warps: output pixel -> source pixel, applied with grid_sample (remap).

A flow here is the sampling map itself, float [H, W, 2] in source pixel coordinates
(x, y): output(q) = input(map(q)). The same map warps masks or other images exactly like
the corrected photo.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ..common.errors import InputError
from ..common.images import mask_box
from .geometry import radial_scale

BISECTION_STEPS = 10  # the bracket is ~30 % of the radius: 10 halvings reach ~0.1 px at r = 300 px
FOLD_ROUNDS = 12  # blurs smooth_folds tries before giving up
FOLD_RADIUS_PX = 3  # half-width of its blur


def _sample_field(field: torch.Tensor, xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear lookup of a working-grid field [h, w] at full-resolution pixel positions [..., 2]."""
    grid = torch.stack([(xy[..., 0] + 0.5) * 2.0 / width - 1.0, (xy[..., 1] + 0.5) * 2.0 / height - 1.0], dim=-1)
    out = F.grid_sample(field[None, None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, 0]


def identity_map(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def block_centers(height: int, width: int, stride: int) -> torch.Tensor:
    """Full-resolution pixel positions [ceil(H / stride), ceil(W / stride), 2] of the stride x stride blocks'
    centres (the identity map for stride 1)."""
    return identity_map(-(-height // stride), -(-width // stride)) * stride + (stride - 1) / 2.0


def coarse_sources(rho_field: np.ndarray, center: tuple, k: float, height: int, width: int,
                   stride: int = 1):
    """Source pixel [h_s, w_s, 2] of every block centre, or None where rho is 0 everywhere (the identity).

    The motion is radial about the principal point c, so the source of q lies on the ray
    c + t * (q - c) / |q - c|; its radius t solves t * s(rho(t)) = |q - c|. Bisection on
    t in [|q - c| / s_max, |q - c| / s_min] always converges (a plain fixed-point iteration
    oscillates where the mesh depth is steep, e.g. at the face's silhouette). Only the
    box where rho is non-zero, grown by the largest displacement, is solved; the rest is
    the identity. ``stride`` > 1 solves at the centres of stride x stride blocks only (upsample_sources
    fills in the pixels: the field is smooth, and it saves time on large images).
    """
    field = torch.from_numpy(np.asarray(rho_field, dtype=np.float32))
    box = _support_box(rho_field, center, k, height, width)
    if box is None:
        return None
    q_all = block_centers(height, width, stride)
    x0, y0, x1, y1 = (box[0] // stride, box[1] // stride, -(-box[2] // stride), -(-box[3] // stride))
    sources = q_all.clone()
    sources[y0:y1, x0:x1] = _solve_sources(field, q_all[y0:y1, x0:x1], center, k, height, width)
    return sources


def upsample_sources(coarse: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """Full-resolution sampling map [H, W, 2] from block-centre sources: the displacement is upsampled."""
    if stride == 1:
        return coarse
    return identity_map(height, width) + _upsample(coarse - block_centers(height, width, stride), stride, height,
                                                   width)


def _upsample(disp: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """Block displacements [h_s, w_s, 2] -> pixels [height, width, 2] (block (0, 0)'s pixels first)."""
    h_s, w_s = disp.shape[:2]
    # Upsample by exactly ``stride`` (block centres land on their pixels), then cut to the image: sizing
    # straight to (height, width) would stretch the blocks when the image is not a multiple of stride.
    return F.interpolate(disp.permute(2, 0, 1)[None], size=(h_s * stride, w_s * stride), mode="bilinear",
                         align_corners=False)[0].permute(1, 2, 0)[:height, :width]


def upsample_moved(coarse: torch.Tensor, stride: int, height: int, width: int, min_det: float,
                   max_det: float) -> tuple:
    """upsample_sources, then smooth_folds at full resolution, both only on the blocks that move (grown by
    one block, which bilinear upsampling reads, and by the reach of the smoothing): the rest is the identity
    either way. Returns (map, pixels smoothed), or (None, 0) when a fold is left."""
    disp = coarse - block_centers(height, width, stride)
    reach = 1 + -(-((FOLD_ROUNDS + 1) * FOLD_RADIUS_PX + 2) // stride)
    blocks = mask_box((disp != 0).any(dim=-1), reach)
    if blocks is None:
        return identity_map(height, width), 0
    by0, by1, bx0, bx1 = blocks
    y0, x0 = by0 * stride, bx0 * stride
    y1, x1 = min(by1 * stride, height), min(bx1 * stride, width)
    region = (identity_map(y1 - y0, x1 - x0) + torch.tensor([x0, y0], dtype=coarse.dtype)
              + _upsample(disp[by0:by1, bx0:bx1], stride, y1 - y0, x1 - x0))
    # smooth_folds works on displacements, which a constant offset of the crop's coordinates does not change
    region, changed = smooth_folds(region, min_det, max_det)
    if region is None:
        return None, 0
    sampling_map = identity_map(height, width)
    sampling_map[y0:y1, x0:x1] = region
    return sampling_map, changed


def _solve_sources(field: torch.Tensor, q: torch.Tensor, center: tuple, k: float, height: int,
                   width: int) -> torch.Tensor:
    """Bisection along the rays from the principal point (see coarse_sources)."""
    c = torch.tensor(center, dtype=torch.float32)
    r_out = (q - c).norm(dim=-1).clamp_min(1e-6)
    u = (q - c) / r_out[..., None]
    # Work in grid_sample's normalised coordinates: position = c_n + u_n * t.
    to_norm = torch.tensor([2.0 / width, 2.0 / height])
    c_n = (c + 0.5) * to_norm - 1.0
    u_n = u * to_norm
    field4 = field[None, None]
    lo = r_out / radial_scale(float(field.max()), k)
    span = r_out / radial_scale(float(field.min()), k) - lo
    for _ in range(BISECTION_STEPS):
        span = span * 0.5
        mid = lo + span
        grid = torch.addcmul(c_n, u_n, mid[..., None])
        rho = F.grid_sample(field4, grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
        # mid * s(rho) > r_out, with s = k (1 + rho) / (k + rho) and k + rho > 0:
        too_far = rho * (mid * k - r_out) + k * (mid - r_out) > 0
        lo = torch.where(too_far, lo, mid)
    src = c + u * (lo + span * 0.5)[..., None]
    # Sources on the reference plane (rho exactly 0) do not move: keep those pixels exact.
    still = _sample_field(field, src, height, width) == 0
    return torch.where(still[..., None], q, src)


def _support_box(rho_field: np.ndarray, center: tuple, k: float, height: int, width: int):
    """Output-pixel box that can differ from the identity: where rho != 0, grown by the largest move."""
    h, w = rho_field.shape
    nz = np.abs(rho_field) > 1e-5
    if not nz.any():
        return None
    ys, xs = np.nonzero(nz)
    sx, sy = width / w, height / h
    bx0, bx1 = xs.min() * sx, (xs.max() + 1) * sx
    by0, by1 = ys.min() * sy, (ys.max() + 1) * sy
    s = radial_scale(rho_field[nz], k)
    far = max(abs(bx0 - center[0]), abs(bx1 - center[0]), abs(by0 - center[1]), abs(by1 - center[1]))
    grow = float(np.abs(s - 1).max()) * far * 1.5 + 2
    return (int(max(bx0 - grow, 0)), int(max(by0 - grow, 0)),
            int(min(np.ceil(bx1 + grow), width)), int(min(np.ceil(by1 + grow), height)))


def jacobian_det(sampling_map: torch.Tensor) -> torch.Tensor:
    """det of d(source)/d(output) per pixel [H-1, W-1], by forward differences of a map [H, W, 2].

    1 for the identity; <= 0 where the warp folds over (and tears beside it); near 0 where one
    source pixel is smeared over many output pixels (a streak).
    """
    dx = sampling_map[:-1, 1:] - sampling_map[:-1, :-1]
    dy = sampling_map[1:, :-1] - sampling_map[:-1, :-1]
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


def smooth_folds(sampling_map: torch.Tensor, min_det: float, max_det: float, rounds: int = FOLD_ROUNDS,
                 radius: int = FOLD_RADIUS_PX) -> tuple:
    """Smooth the displacement only around pixels whose det J leaves [min_det, max_det].

    A fold is a small, sharp feature (a nose side or a cheek running over what lies behind it), so
    blurring the displacement just there removes it and leaves the rest of the warp exact.
    Returns (map, number of pixels changed) when every det is in range after at most ``rounds``
    blurs, else (None, 0).
    """
    bad = _out_of_range(sampling_map, min_det, max_det)
    if not bad.any():
        return sampling_map, 0
    # Work on the box around the bad pixels, grown by as far as the smoothing can spread.
    height, width = sampling_map.shape[:2]
    ys, xs = torch.nonzero(bad, as_tuple=True)
    grow = (rounds + 1) * radius + 2
    y0, y1 = max(int(ys.min()) - grow, 0), min(int(ys.max()) + 1 + grow, height)
    x0, x1 = max(int(xs.min()) - grow, 0), min(int(xs.max()) + 1 + grow, width)
    ident = identity_map(y1 - y0, x1 - x0)
    disp = (sampling_map[y0:y1, x0:x1] - ident - torch.tensor([x0, y0], dtype=sampling_map.dtype))
    disp = disp.permute(2, 0, 1)[None]
    kernel = torch.ones(2, 1, 2 * radius + 1, 2 * radius + 1) / (2 * radius + 1) ** 2
    changed = torch.zeros(y1 - y0, x1 - x0, dtype=torch.bool)
    for _ in range(rounds):
        bad = F.pad(_out_of_range(ident + disp[0].permute(1, 2, 0), min_det, max_det).float()[None, None],
                    (0, 1, 0, 1))
        if not bad.any():
            break
        near = F.max_pool2d(bad, 2 * radius + 1, stride=1, padding=radius) > 0
        blurred = F.conv2d(F.pad(disp, (radius,) * 4, mode="replicate"), kernel, groups=2)
        disp = torch.where(near, blurred, disp)
        changed |= near[0, 0]
    region = ident + torch.tensor([x0, y0], dtype=sampling_map.dtype) + disp[0].permute(1, 2, 0)
    if _out_of_range(region, min_det, max_det).any():
        return None, 0
    out = sampling_map.clone()
    out[y0:y1, x0:x1] = region
    return out, int(changed.sum())


def _out_of_range(sampling_map: torch.Tensor, min_det: float, max_det: float) -> torch.Tensor:
    det = jacobian_det(sampling_map)
    return (det < min_det) | (det > max_det)


def forward_points(points_xy: np.ndarray, rho_field: np.ndarray, center: tuple, k: float,
                   height: int, width: int) -> np.ndarray:
    """Where source points [N, 2] land in the output under the same field."""
    field = torch.from_numpy(np.asarray(rho_field, dtype=np.float32))
    p = torch.from_numpy(np.asarray(points_xy, dtype=np.float32)[:, :2])
    s = radial_scale(_sample_field(field, p[None], height, width)[0], k)
    c = torch.tensor(center, dtype=torch.float32)
    return (c + (p - c) * s[:, None]).numpy().astype(np.float64)


def invert_map_at(sampling_map: torch.Tensor, points_xy: np.ndarray, steps: int = 30) -> np.ndarray:
    """Output positions whose sampling map hits the given source points (numerical inverse of a flow)."""
    height, width = sampling_map.shape[:2]
    target = torch.from_numpy(np.asarray(points_xy, dtype=np.float32)[:, :2])
    fields = sampling_map.permute(2, 0, 1)
    q = target.clone()
    for _ in range(steps):
        grid = torch.stack([(q[:, 0] + 0.5) * 2.0 / width - 1.0, (q[:, 1] + 0.5) * 2.0 / height - 1.0], dim=-1)
        hit = F.grid_sample(fields[None], grid[None, None], mode="bilinear", padding_mode="border",
                            align_corners=False)[0, :, 0].T
        q = q + (target - hit)
    return q.numpy().astype(np.float64)


def remap(images_bchw: torch.Tensor, sampling_map: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp [B, C, H, W] with a sampling map [H, W, 2] or [B, H, W, 2] (borders replicated).

    Pixel x maps to grid_sample's 2 x / (W - 1) - 1 (the align_corners=True convention, as kornia's
    remap), so pixel centres land on pixel centres and an identity map is exact up to rounding.
    """
    b, _, height, width = images_bchw.shape
    m = sampling_map if sampling_map.ndim == 4 else sampling_map[None]
    m = m.to(images_bchw.device, images_bchw.dtype)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=m.dtype, device=m.device)
    grid = m * scale - 1.0
    grid = grid.expand(b, *grid.shape[1:]) if grid.shape[0] == 1 else grid
    return F.grid_sample(images_bchw, grid, mode=mode, padding_mode="border", align_corners=True)


def apply_flow(x_bchw: torch.Tensor, sampling_maps: torch.Tensor, what: str) -> torch.Tensor:
    """Warp [B, C, H, W] with Face Undistort's maps [N, H, W, 2]: map i warps image i, and a flow of one
    image warps every image; any other batch pairing is refused (it used to reuse map 0 silently)."""
    batch, count = x_bchw.shape[0], sampling_maps.shape[0]
    height, width = sampling_maps.shape[1:3]
    if tuple(x_bchw.shape[-2:]) != (height, width):
        raise InputError(f"Apply Face Flow: the 'flow' is for {width}x{height} images but '{what}' is "
                         f"{x_bchw.shape[-1]}x{x_bchw.shape[-2]}; resize it to the undistorted image's size.")
    if count not in (1, batch):
        raise InputError(f"Apply Face Flow: the 'flow' holds {count} warps (one per undistorted image) but "
                         f"'{what}' has a batch of {batch}; connect as many images as were undistorted, or a "
                         "flow of one image to warp every image the same way.")
    return remap(x_bchw, sampling_maps)

"""Geometric face perspective undistortion (the pack's built-in default).

Per image: face-mesh landmarks (mediapipe, or given) -> near camera from a field of view
or a user distance with the interocular prior -> dense depth ratio (mesh interpolation,
or a given depth map fitted to the mesh) -> re-projection from the near camera to one
``far_m`` away with the focal length scaled by distance (thesis eq. 3.3) -> one dense
backward warp (grid_sample); with detected landmarks the mesh depths are read again on that
first correction and, when they bring the face forward, the warp is redone with them
(refine_depth). This is a geometric stand-in for the thesis' learned
corrector (a facevid2vid network fine-tuned on EG3D renders, see learned.py): it moves
pixels, it cannot reveal what the near camera did not see (e.g. the ears).
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from ..common.errors import InputError
from ..common.images import mask_box
from ..common.progress import Progress, no_progress
from .depth import face_polygon_mask, landmark_rho, rho_field_from_depth, rho_field_from_landmarks
from .geometry import DEFAULT_FAR_M, DEFAULT_FOV_DEG, near_camera
from .landmarks import MIN_FACE_PX, eye_centers, interocular_px, pick_face
from .warp import (FOLD_RADIUS_PX, coarse_sources, forward_points, identity_map, remap, smooth_folds, upsample_moved,
                   upsample_sources)


SOLVE_SIDE = 128  # the warp is solved on a grid of about this many blocks along the long side
# det J of the backward map outside [MIN, MAX]: a fold-over (<= 0), a streak (one source pixel smeared
# over more than 1 / MIN output pixels) or a tear (neighbouring output pixels sampling far-apart sources).
MIN_JACOBIAN_DET = 0.05
MAX_JACOBIAN_DET = 6.0
DAMPING = (1.0, 0.85, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)  # fractions of rho tried in turn


@dataclass
class UndistortSettings:
    far_m: float = DEFAULT_FAR_M
    distance_m: float = 0.0  # 0: estimate from the FOV and the interocular prior
    fov_deg: float = DEFAULT_FOV_DEG
    face_index: int = -1  # -1: largest face
    on_no_face: str = "error"  # or "pass_through"
    falloff: float = 0.35  # fade width outside the face, in face widths
    depth_is_disparity: bool = True
    refine_depth: bool = True  # detected faces: re-read the mesh depths on a first correction (refine_depth)


@dataclass
class FaceCorrection:
    """What happened to one image (for reports and tests)."""
    found: bool
    distance_m: float = 0.0
    focal_px: float = 0.0
    k: float = 1.0
    landmarks_in: Optional[np.ndarray] = None  # [N, 3] source pixels
    landmarks_out: Optional[np.ndarray] = None  # [N, 2] output pixels
    note: str = ""


@dataclass
class UndistortResult:
    images: torch.Tensor  # IMAGE [B, H, W, C]
    sampling_maps: torch.Tensor  # [B, H, W, 2] source pixel for each output pixel
    face_masks: torch.Tensor  # MASK [B, H, W] in the output frame
    faces: list = field(default_factory=list)  # FaceCorrection per image

    def summary(self) -> str:
        lines = []
        for i, f in enumerate(self.faces):
            if f.found:
                lines.append(f"image {i}: face at ~{f.distance_m:.2f} m (f={f.focal_px:.0f} px), "
                             f"re-projected x{f.k:.1f} further away. {f.note}".strip())
            else:
                lines.append(f"image {i}: {f.note}")
        return "\n".join(lines)


def correct_one(image_bchw: torch.Tensor, points: Optional[np.ndarray], settings: UndistortSettings,
                depth: Optional[np.ndarray] = None, depth_mask: Optional[np.ndarray] = None):
    """Undistort one image [1, C, H, W]; returns (image, map [H,W,2], mask [H,W], FaceCorrection)."""
    _, _, height, width = image_bchw.shape
    warp = plan_warp(points, settings, height, width, depth, depth_mask)
    if isinstance(warp, str):
        return _pass_through(image_bchw, warp)
    camera, k, sampling_map, rho, warp_note = warp
    src_mask = face_polygon_mask(points, height, width) if points is not None else (
        depth_mask if depth_mask is not None else np.zeros((height, width), np.float32))
    # the face mask rides along as a 4th channel: one resampling pass for both
    mask_b1hw = torch.from_numpy(np.asarray(src_mask, np.float32))[None, None].to(image_bchw.dtype)
    corrected, out_mask = _remap_moved(torch.cat([image_bchw, mask_b1hw], dim=1), sampling_map).split([3, 1], 1)
    out_mask = out_mask[0, 0]
    moved = forward_points(points[:, :2], rho, camera.center, k, height, width) if points is not None else None
    note = "; ".join(n for n in (camera.note, warp_note) if n)
    info = FaceCorrection(True, camera.distance_m, camera.focal_px, k, points, moved, note)
    return corrected, sampling_map, out_mask.clamp(0, 1), info


def plan_warp(points: Optional[np.ndarray], settings: UndistortSettings, height: int, width: int,
              depth: Optional[np.ndarray] = None, depth_mask: Optional[np.ndarray] = None):
    """(near camera, k, sampling map, rho used, note) for one image, or why it passes through (a str)."""
    if points is None and depth is None:
        return "no face found; passed through unchanged"
    if points is not None and np.ptp(points[:, 0]) < MIN_FACE_PX:
        return f"face narrower than {MIN_FACE_PX} px; perspective change is sub-pixel, passed through unchanged"
    if points is not None:
        camera = near_camera(interocular_px(points), width, height, settings.distance_m, settings.fov_deg)
    else:
        if settings.distance_m <= 0:
            raise InputError("Face Undistort: with a depth map and no face landmarks, set selfie_distance_m "
                             "(camera to face, m) so the depth can be scaled.")
        from .geometry import focal_from_fov, NearCamera

        camera = NearCamera(focal_from_fov(settings.fov_deg, width, height), ((width - 1) / 2, (height - 1) / 2),
                            settings.distance_m)
    k = camera.ratio_k(settings.far_m)
    if k <= 1.0 + 1e-6:
        return f"face already at ~{camera.distance_m:.2f} m (>= far distance); nothing to correct"
    if depth is not None:
        mask = depth_mask if depth_mask is not None else (
            face_polygon_mask(points, height, width) if points is not None else np.ones((height, width)))
        rho = rho_field_from_depth(depth, mask, points, camera.focal_px, settings.depth_is_disparity,
                                   distance_m=camera.distance_m)
    else:
        rho = rho_field_from_landmarks(points, landmark_rho(points, camera.focal_px), height, width,
                                       settings.falloff)
    sampling_map, rho, warp_note = fold_free_map(rho, camera.center, k, height, width)
    if sampling_map is None:
        return warp_note
    return camera, k, sampling_map, rho, warp_note


def _remap_moved(image_bchw: torch.Tensor, sampling_map: torch.Tensor) -> torch.Tensor:
    """remap, run only on the box of pixels the map moves; the others are kept exactly (grid_sample's
    normalisation is not bit-exact for an identity map)."""
    moved = (sampling_map != identity_map(*sampling_map.shape[:2])).any(dim=-1)
    box = mask_box(moved)
    if box is None:
        return image_bchw
    y0, y1, x0, x1 = box
    box = remap(image_bchw, sampling_map[y0:y1, x0:x1])  # sources anywhere in the image
    out = image_bchw.clone()
    out[..., y0:y1, x0:x1] = torch.where(moved[y0:y1, x0:x1], box, image_bchw[..., y0:y1, x0:x1])
    return out


def refine_depth(first_bchw: torch.Tensor, points: np.ndarray, detector) -> np.ndarray:
    """``points`` with their depths re-read by the face mesh on ``first_bchw``, the image corrected with them.

    The face mesh reads depth from the face's 2D shape as if the camera were far: on a near selfie it
    puts the chin and jaw too far back (~20 px of z at 0.25 m in bench/undistort.py's renders, whose
    true depths are known), so a correction from those depths leaves them too small. On the first
    correction, which looks as if taken from afar, the depths it reads are close to the true ones; the
    final warp uses them (eyes kept at their depth, positions from the near image).

    It feeds back when the distance is wrong: a photo from afar taken for a 0.3 m selfie (e.g. skimage's
    astronaut) is over-corrected by the first pass, and there the face mesh reads the over-corrected face
    as receding behind its eyes (astronaut: chin 5 -> 41 px of z), which would squash it (face height
    -24 %). A correction towards the truth instead brings the face forward, so the re-read depths are kept
    only when they put the face, on average, no further behind the eyes than the first reading (renders
    at 0.25-0.35 m corrected at about their distance: -3 to -7 px; the two far photos at 0.3 m: +8 to
    +11 px). Otherwise, and without a face on the first correction, ``points`` itself is returned. The
    check does not catch every wrong distance: renders at 0.6-1 m corrected as 0.3 m selfies pass it, and
    the refinement adds to their over-correction (bench/undistort.py prints that case).
    """
    from ..common.images import image_to_uint8

    faces = detector.detect(image_to_uint8(first_bchw.permute(0, 2, 3, 1))[0])
    centre = points[:, :2].mean(axis=0)
    reach = 0.25 * np.ptp(points[:, 0])  # a quarter of the face width: the same face, not a neighbour
    offsets = [(float(np.linalg.norm(f.points[:, :2].mean(axis=0) - centre)), f.points) for f in faces]
    near = [(offset, p) for offset, p in offsets if offset < reach]
    if not near:
        return points
    again = min(near, key=lambda item: item[0])[1]
    right, left = eye_centers(points)
    right_again, left_again = eye_centers(again)
    refined = points.copy()
    refined[:, 2] = again[:, 2] - (right_again[2] + left_again[2]) / 2.0 + (right[2] + left[2]) / 2.0
    return refined if float(np.mean(refined[:, 2] - points[:, 2])) <= 0.0 else points


def fold_free_map(rho: np.ndarray, center: tuple, k: float, height: int, width: int):
    """A backward map for ``rho`` with MIN_JACOBIAN_DET <= det J <= MAX_JACOBIAN_DET everywhere.

    A geometric warp cannot occlude: where a nose side or a cheek moves over what lies behind it,
    the warp folds over and tears. The displacement is first smoothed just around such pixels; only
    if that is not enough is the whole correction weakened (DAMPING). Returns (map, rho used, note),
    or (None, None, note) when even the weakest damping folds.

    The warp is solved and smoothed on blocks of ~1/SOLVE_SIDE of the long side (det J does not
    depend on the grid's spacing, so the same bounds hold there) and upsampled once; the full map
    is checked again, and smoothed at full resolution in the rare case upsampling left a fold.
    """
    stride = max(1, max(height, width) // SOLVE_SIDE)
    radius = max(1, round(FOLD_RADIUS_PX / stride))
    for damping in DAMPING:
        coarse = coarse_sources(rho * damping, center, k, height, width, stride)
        if coarse is None:
            return identity_map(height, width), rho * damping, ""
        smoothed = 0
        if min(coarse.shape[:2]) > 1:
            # in block units, so that the determinant is that of the full-resolution map
            coarse, smoothed = smooth_folds(coarse / stride, MIN_JACOBIAN_DET, MAX_JACOBIAN_DET, radius=radius)
            coarse = None if coarse is None else coarse * stride
            smoothed *= stride * stride
        if coarse is None:
            continue
        if stride == 1 or min(height, width) == 1:
            sampling_map = upsample_sources(coarse, stride, height, width)
        else:  # checked again at full resolution, where pixels between block centres could still fold
            sampling_map, more = upsample_moved(coarse, stride, height, width, MIN_JACOBIAN_DET, MAX_JACOBIAN_DET)
            if sampling_map is None:
                continue
            smoothed += more
        notes = [f"correction at {damping:.0%}"] * (damping < 1) + [f"smoothed {smoothed} px"] * (smoothed > 0)
        note = f"{' and '.join(notes)} to keep the warp free of fold-overs" if notes else ""
        return sampling_map, rho * damping, note
    return None, None, (f"the warp folds or tears even at {DAMPING[-1]:.0%} strength; passed through unchanged: "
                        "set selfie_distance_m to the true distance")


def _pass_through(image_bchw, note):
    _, _, height, width = image_bchw.shape
    return (image_bchw, identity_map(height, width), torch.zeros(height, width), FaceCorrection(False, note=note))


def undistort_faces(images: torch.Tensor, settings: UndistortSettings = UndistortSettings(),
                    landmarks: Optional[Sequence] = None, depth: Optional[torch.Tensor] = None,
                    depth_mask: Optional[torch.Tensor] = None, detector=None,
                    progress: Optional[Progress] = None) -> UndistortResult:
    """Undistort a batch IMAGE [B, H, W, C].

    landmarks: per image a list of faces ([N, 3] pixel arrays) from another node; else
    ``detector`` (a FaceMeshDetector) finds them. depth: IMAGE/MASK-like [B, H, W(, C)]
    relative depth to use instead of mesh interpolation (fitted to the mesh when there is one).
    """
    from .landmarks import FaceMeshDetector

    if images.ndim != 4:
        raise InputError(f"Expected an IMAGE [B,H,W,C], got shape {tuple(images.shape)}.")
    batch, height, width = images.shape[:3]
    check_batches(batch, landmarks=landmarks, depth=depth, depth_mask=depth_mask)
    progress = progress or no_progress(batch)
    if landmarks is None and detector is None and (depth is None or settings.distance_m <= 0):
        detector = FaceMeshDetector()
    with _one_torch_thread():
        return _undistort_batch(images, settings, landmarks, depth, depth_mask, detector, progress)


def _undistort_batch(images, settings, landmarks, depth, depth_mask, detector, progress) -> UndistortResult:
    batch, height, width = images.shape[:3]
    per_image = []  # (image, map, mask, FaceCorrection)
    refine = detector if landmarks is None and settings.refine_depth else None
    for i in range(batch):
        faces = _faces_for(i, landmarks, detector, images)
        face = pick_face(faces, settings.face_index)
        d_i = _depth_for(depth, i, height, width)
        if face is None and d_i is None and settings.on_no_face != "pass_through":
            raise InputError(
                f"No face found in image {i} of the batch ({width}x{height}). Use a photo with a visible "
                "face, connect landmarks or a depth map, or set on_no_face to 'pass_through'.")
        m_i = None if depth_mask is None else depth_mask[min(i, depth_mask.shape[0] - 1)].cpu().numpy()
        img = images[i:i + 1, ..., :3].permute(0, 3, 1, 2).float().cpu()
        per_image.append(_correct_refined(img, None if face is None else face.points, settings, d_i, m_i, refine))
        progress.step()
    outs, maps, masks, infos = (list(items) for items in zip(*per_image))
    result = torch.cat(outs).clamp(0, 1).permute(0, 2, 3, 1)
    if images.shape[-1] > 3:  # keep an alpha channel, warped the same way
        alpha = torch.cat([remap(images[i:i + 1, ..., 3:].permute(0, 3, 1, 2).float().cpu(), maps[i])
                           for i in range(batch)]).permute(0, 2, 3, 1)
        result = torch.cat([result, alpha], dim=-1)
    return UndistortResult(result, torch.stack(maps), torch.stack(masks), infos)


def _correct_refined(img, points, settings, depth, depth_mask, detector):
    """correct_one, then again with the mesh depths re-read on its output (refine_depth) when there is a
    ``detector``, detected landmarks and no depth map."""
    out, smap, mask, info = correct_one(img, points, settings, depth, depth_mask)
    if detector is None or not info.found or points is None or depth is not None:
        return out, smap, mask, info
    refined = refine_depth(out, points, detector)
    if refined is points:
        return out, smap, mask, info
    out, smap, mask, info = correct_one(img, refined, settings)
    info.landmarks_in = points  # the landmarks found in the image, as without refinement
    info.note = "; ".join(n for n in (info.note, "mesh depths re-read on a first correction") if n)
    return out, smap, mask, info


@contextmanager
def _one_torch_thread():
    """Run torch on one intra-op thread. Per image the warp is a few dozen short ops on ~1 MB tensors:
    OpenMP workers gain nothing on them and, spinning between ops, take the cores the face mesh's own
    threads need (bench/undistort.py at 512^2 before this: 170 ms CPU for 90 ms wall on 2 threads and
    2 cores; the same work takes ~37 ms CPU on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_batches(batch: int, **inputs) -> None:
    """Per-image inputs (landmarks, depth maps, masks) have one entry per image, or one shared by all."""
    for name, value in inputs.items():
        if value is None:
            continue
        count = len(value) if isinstance(value, (list, tuple)) else int(value.shape[0])
        if count not in (1, batch):
            raise InputError(f"Face Undistort: '{name}' has a batch of {count} but 'image' has {batch}; give one "
                             "per image, or a batch of 1 to use the same for every image.")


def _faces_for(i, landmarks, detector, images) -> list:
    from .landmarks import FaceLandmarks
    from ..common.images import image_to_uint8

    if landmarks is not None:
        per_image = landmarks[min(i, len(landmarks) - 1)] if len(landmarks) else []
        return [FaceLandmarks(np.asarray(p, dtype=np.float64)) for p in per_image]
    if detector is None:
        return []
    return detector.detect(image_to_uint8(images[i:i + 1])[0])


def _depth_for(depth, i, height, width) -> Optional[np.ndarray]:
    if depth is None:
        return None
    d = depth[min(i, depth.shape[0] - 1)]
    d = d.float().cpu()
    if d.ndim == 3:
        d = d[..., :3].mean(-1)
    if tuple(d.shape) != (height, width):
        raise InputError(f"The depth map is {d.shape[1]}x{d.shape[0]} but the image is {width}x{height}; "
                         "resize the depth map to match.")
    return d.numpy().astype(np.float64)


def detect_landmarks(images: torch.Tensor, max_faces: int = 5) -> list:
    """Face-mesh landmarks for each image: list (per image) of lists of [468, 3] pixel arrays."""
    from .landmarks import FaceMeshDetector
    from ..common.images import image_to_uint8

    detector = FaceMeshDetector(max_faces=max_faces)
    return [[f.points for f in detector.detect(rgb)] for rgb in image_to_uint8(images)]

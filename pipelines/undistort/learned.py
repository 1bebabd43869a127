"""The thesis' learned face corrector (3.4): loading the official checkpoint and running it.

The official weights (``00000196-checkpoint.pth.tar``, facevid2vid fine-tuned on EG3D renders)
hold the state dicts ``generator``, ``kp_detector`` (15 canonical 3D keypoints),
``he_estimator`` and ``he_estimator_far`` (head pose and expression of the near and of the
far view). As in the official inference, each face is FFHQ-aligned to a 512 x 512 crop in
0..1 RGB and drives itself: its canonical keypoints posed by ``he_estimator`` are the
source, posed by ``he_estimator_far`` the driving keypoints, and the generator renders the
far view. Here the corrected crop is then pasted back into the photo (feathered), so the
node's output keeps the input's size.

The ``flow`` of the learned path: the generator moves 3D features, not pixels. The sampling
map reported is the dense deformation's x/y averaged over the volume's depth, carried from
crop to photo coordinates and blended like the pasted crop; it tells where the features of
each output pixel came from, so masks follow the face approximately.
"""
import contextlib
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from ..common.checkpoints import load_state_dict, require_keys
from ..common.errors import CheckpointFormatError, InputError
from ..common.progress import Progress, no_progress

EXPECTED_KEYS = ("generator", "kp_detector", "he_estimator", "he_estimator_far")
NUM_KEYPOINTS = 15
OFFICIAL_FILENAME = "00000196-checkpoint.pth.tar"
CROP_SIZE = 512  # the official pipeline aligns faces to 512 x 512 (prepare_image.py --res) and feeds them as is
CROP_FEATHER = 0.08
MODES = ("geometry", "learned", "auto")


@dataclass(eq=False)  # compared and hashed by identity: ComfyUI tracks each loaded corrector
class FaceCorrector:
    path: str
    num_keypoints: int
    networks: torch.nn.Module  # facevid2vid.FaceCorrectorNetworks, eval mode

    def torch_modules(self) -> list:
        return [self.networks]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def _keypoint_count(kp_detector: dict, path: str) -> int:
    """facevid2vid's KPDetector ends in a 3D conv with one output channel per keypoint, named ``kp``."""
    weight = kp_detector.get("kp.weight")
    if weight is None:
        raise CheckpointFormatError(path, "kp_detector has no 'kp.weight' (not a facevid2vid keypoint detector)",
                                    expected=["kp_detector.kp.weight", "kp_detector.kp.bias"])
    return int(weight.shape[0])


def load_face_corrector(path: str) -> FaceCorrector:
    """Load and check the official corrector checkpoint and build its networks (strict load).

    Raises CheckpointFormatError naming file, folder and expected keys if it is not one.
    """
    from .facevid2vid import build_networks

    checkpoint = load_state_dict(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(path, "Not a checkpoint dictionary", expected=list(EXPECTED_KEYS))
    require_keys(checkpoint, EXPECTED_KEYS, path, "facevid2vid face-corrector")
    parts = {k: checkpoint[k] for k in EXPECTED_KEYS}
    for name, sd in parts.items():
        if not isinstance(sd, dict) or not sd:
            raise CheckpointFormatError(path, f"'{name}' is not a state dict", expected=list(EXPECTED_KEYS))
    num_kp = _keypoint_count(parts["kp_detector"], path)
    if num_kp != NUM_KEYPOINTS:
        raise CheckpointFormatError(
            path, f"kp_detector predicts {num_kp} keypoints, the Total Selfie corrector has {NUM_KEYPOINTS}",
            expected=["kp_detector.kp.weight"])
    if set(parts["he_estimator"]) != set(parts["he_estimator_far"]):
        raise CheckpointFormatError(path, "he_estimator and he_estimator_far have different layouts",
                                    expected=sorted(parts["he_estimator"])[:6])
    return FaceCorrector(str(path), num_kp, build_networks(parts, str(path)))


@dataclass
class LearnedResult:
    images: torch.Tensor  # IMAGE [B, H, W, C]
    sampling_maps: torch.Tensor  # [B, H, W, 2] source pixel for each output pixel (see the module doc)
    face_masks: torch.Tensor  # MASK [B, H, W] in the output frame
    notes: list = field(default_factory=list)  # one line per image

    def summary(self) -> str:
        return "\n".join(f"image {i}: {note}" for i, note in enumerate(self.notes))


def undistort_faces_learned(images: torch.Tensor, corrector: FaceCorrector, face_index: int = -1,
                            on_no_face: str = "error", landmarks: Optional[Sequence] = None, detector=None,
                            progress: Optional[Progress] = None, device="cpu", dtype=torch.float32,
                            crop_size: int = CROP_SIZE) -> LearnedResult:
    """Correct the chosen face of every image of IMAGE [B, H, W, C] with the learned corrector.

    landmarks: per image a list of face meshes ([468, 3] pixels) from another node; else
    ``detector`` (a FaceMeshDetector, created here if None) finds them. ``dtype`` other than
    float32 runs the networks under autocast on ``device`` (weights stay float32).
    """
    from .landmarks import FaceMeshDetector, pick_face
    from .undistort import _faces_for, check_batches

    if images.ndim != 4:
        raise InputError(f"Expected an IMAGE [B,H,W,C], got shape {tuple(images.shape)}.")
    batch = images.shape[0]
    progress = progress or no_progress(batch)
    check_batches(batch, landmarks=landmarks)
    if landmarks is None and detector is None:
        detector = FaceMeshDetector()
    outs, maps, masks, notes = [], [], [], []
    networks = corrector.networks.to(device)
    for i in range(batch):
        face = pick_face(_faces_for(i, landmarks, detector, images), face_index)
        image = images[i:i + 1].permute(0, 3, 1, 2).float().cpu()
        if face is None:
            if on_no_face != "pass_through":
                raise InputError(
                    f"No face found in image {i} of the batch ({images.shape[2]}x{images.shape[1]}). Use a "
                    "photo with a visible face, connect landmarks, or set on_no_face to 'pass_through'.")
            out, smap, mask, note = _pass_through(image)
        else:
            out, smap, mask, note = _correct_one(networks, image, face.points, crop_size, device, dtype)
        outs.append(out)
        maps.append(smap)
        masks.append(mask)
        notes.append(note)
        progress.step(preview=out.permute(0, 2, 3, 1)[..., :3])
    return LearnedResult(torch.cat(outs).permute(0, 2, 3, 1).clamp(0, 1), torch.stack(maps), torch.stack(masks),
                         notes)


def _autocast(device, dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def _correct_one(networks, image_bchw: torch.Tensor, points: np.ndarray, crop_size: int, device, dtype):
    """One image [1, C, H, W] (C = 3 or 4) -> (image, sampling map [H, W, 2], face mask [H, W], note)."""
    from ..selfie_tools.align import align_crop, quad_from_mediapipe
    from ..selfie_tools.crop import CropBatch, paste_images, crop_images
    from .depth import face_polygon_mask
    from .warp import remap

    height, width = image_bchw.shape[-2:]
    geometry = align_crop(quad_from_mediapipe(points), (height, width), crop_size, CROP_FEATHER)
    crops = CropBatch([geometry])
    rgb = image_bchw[:, :3]
    face = crop_images(rgb, crops)
    with torch.inference_mode(), _autocast(device, dtype):
        result = networks(face.to(device))
    corrected_face = result.image.float().cpu().clamp(0, 1)
    pasted, alpha = paste_images(rgb, corrected_face, crops)
    sampling_map = _photo_sampling_map(result.deformation.float().cpu()[0], geometry, alpha[0])
    if image_bchw.shape[1] > 3:  # an alpha channel follows the face like a mask would
        pasted = torch.cat([pasted, remap(image_bchw[:, 3:], sampling_map)], dim=1)
    mask = remap(torch.from_numpy(face_polygon_mask(points, height, width))[None, None], sampling_map)[0, 0]
    near, far = (torch.stack(p.degrees())[:, 0].tolist() for p in (result.near_pose, result.far_pose))
    note = ("learned corrector: face aligned to {s}x{s}; head pose near -> far: yaw {:.1f} -> {:.1f}, "
            "pitch {:.1f} -> {:.1f}, roll {:.1f} -> {:.1f} degrees").format(
        near[0], far[0], near[1], far[1], near[2], far[2], s=crop_size)
    return pasted, sampling_map, mask.clamp(0, 1), note


def _photo_sampling_map(deformation: torch.Tensor, geometry, alpha: torch.Tensor) -> torch.Tensor:
    """Deformation [D, h, w, 3] of the crop -> photo sampling map [H, W, 2] (pixel indices, x then y).

    Photo pixel p -> crop position c = M (p + 0.5) -> depth-averaged deformation at c (grid units,
    align_corners=False: -1 and 1 are the crop's outer edges) -> crop position s -> photo
    M^-1 s - 0.5; blended with the identity by the paste weight ``alpha`` [H, W].
    """
    import torch.nn.functional as F

    from .warp import identity_map

    height, width = alpha.shape
    crop_h, crop_w = geometry.crop_size
    pixels = identity_map(height, width).double()
    matrix = torch.from_numpy(geometry.matrix)
    inverse = torch.from_numpy(geometry.inverse())
    in_crop = (pixels + 0.5) @ matrix[:, :2].T + matrix[:, 2]
    grid = in_crop / torch.tensor([crop_w, crop_h], dtype=torch.float64) * 2 - 1
    field = deformation[..., :2].mean(dim=0).permute(2, 0, 1)[None].double()  # [1, 2, h, w]
    source = F.grid_sample(field, grid[None], mode="bilinear", padding_mode="border", align_corners=False)
    source = (source[0].permute(1, 2, 0) + 1) / 2 * torch.tensor([crop_w, crop_h], dtype=torch.float64)
    source_pixels = source @ inverse[:, :2].T + inverse[:, 2] - 0.5
    blended = pixels + alpha.double()[..., None] * (source_pixels - pixels)
    return blended.float()


def _pass_through(image_bchw):
    from .warp import identity_map

    height, width = image_bchw.shape[-2:]
    note = "no face found; passed through unchanged"
    return image_bchw, identity_map(height, width), torch.zeros(height, width), note


def correct_faces(mode: str, images: torch.Tensor, settings, corrector: Optional[FaceCorrector] = None,
                  landmarks=None, depth=None, depth_mask=None, progress: Optional[Progress] = None,
                  device="cpu", dtype=torch.float32) -> tuple:
    """Face Undistort's modes: 'geometry', 'learned' (needs ``corrector``), 'auto' (learned when a
    corrector is loaded, else geometry). Returns (result with images / sampling_maps / face_masks,
    report saying which corrector ran)."""
    from .undistort import undistort_faces

    if mode not in MODES:
        raise InputError(f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.")
    if mode == "learned" and corrector is None:
        raise InputError(f"Mode 'learned' needs the learned corrector: put {OFFICIAL_FILENAME} into "
                         "models/recompose/face, load it with 'Load Face Corrector' and connect it, or use mode "
                         "'auto' (falls back to geometry) or 'geometry'.")
    if mode == "geometry" or corrector is None:
        result = undistort_faces(images, settings, landmarks=landmarks, depth=depth, depth_mask=depth_mask,
                                 progress=progress)
        if mode == "auto":
            return result, f"mode auto: no learned corrector loaded; used geometry.\n{result.summary()}"
        return result, result.summary()
    result = undistort_faces_learned(images, corrector, settings.face_index, settings.on_no_face,
                                     landmarks=landmarks, progress=progress, device=device, dtype=dtype)
    ignored = " (the depth map only applies to the geometric corrector; ignored)" if depth is not None else ""
    header = f"mode {mode}: ran the learned corrector ({corrector.name}, facevid2vid){ignored}."
    return result, f"{header}\n{result.summary()}"

"""The four networks of Total Selfie's face corrector, their sizes read from a checkpoint, and
the near -> far correction the official inference runs.

Widths and block counts are read from tensor shapes and key names (the official values are
the dataclass defaults, from the published ``config/eg3d.yaml``), so smaller files in the
same layout load through the same code. Loading is strict.
"""
import re
from dataclasses import dataclass

import torch
from torch import nn

from ...common.checkpoints import load_into
from ...common.errors import CheckpointFormatError
from .blocks import gaussian_kernel_size
from .dense_motion import DenseMotionConfig
from .generator import GeneratorConfig, OcclusionAwareSPADEGenerator
from .head_pose import HeadPose, HeadPoseConfig, HeadPoseEstimator, posed_keypoints
from .keypoints import KeypointConfig, KeypointDetector


@dataclass
class Correction:
    image: torch.Tensor  # [B, 3, H, W] in 0..1
    deformation: torch.Tensor  # [B, D, h, w, 3] feature-volume sampling positions in [-1, 1]
    near_pose: HeadPose
    far_pose: HeadPose


class FaceCorrectorNetworks(nn.Module):
    """kp_detector, he_estimator (near), he_estimator_far and the generator, as in the checkpoint."""

    def __init__(self, keypoints: KeypointConfig, head_pose: HeadPoseConfig, generator: GeneratorConfig):
        super().__init__()
        self.kp_detector = KeypointDetector(keypoints)
        self.he_estimator = HeadPoseEstimator(head_pose)
        self.he_estimator_far = HeadPoseEstimator(head_pose)
        self.generator = OcclusionAwareSPADEGenerator(generator)

    def forward(self, face: torch.Tensor) -> Correction:
        """An FFHQ-aligned face [B, 3, S, S] in 0..1 drives itself: its near head pose and
        expression (``he_estimator``) are replaced by the far ones (``he_estimator_far``)."""
        canonical = self.kp_detector(face)
        near, far = self.he_estimator(face), self.he_estimator_far(face)
        out = self.generator(face, kp_source=posed_keypoints(canonical, near),
                             kp_driving=posed_keypoints(canonical, far))
        return Correction(out.image, out.deformation, near, far)


def build_networks(state_dicts: dict, path: str) -> FaceCorrectorNetworks:
    """Networks sized from ``state_dicts`` (the checkpoint's four parts), weights loaded strictly, eval mode."""
    networks = FaceCorrectorNetworks(keypoint_config(state_dicts["kp_detector"], path),
                                     head_pose_config(state_dicts["he_estimator"], path),
                                     generator_config(state_dicts["generator"], path))
    for name, module in networks.named_children():
        load_into(module, state_dicts[name], path, f"face corrector '{name}'")
    return networks.eval().requires_grad_(False)


def _shape(sd: dict, key: str, part: str, path: str) -> tuple:
    if key not in sd:
        raise CheckpointFormatError(path, f"'{part}' has no '{key}' (not a facevid2vid {part})",
                                    expected=[f"{part}.{key}"])
    return tuple(sd[key].shape)


def _count(sd: dict, pattern: str) -> int:
    """How many distinct indices fill the ``(\\d+)`` of ``pattern`` among the keys."""
    regex = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := regex.fullmatch(k))})


def _widest(sd: dict, pattern: str) -> int:
    regex = re.compile(pattern)
    return max(v.shape[0] for k, v in sd.items() if regex.fullmatch(k))


def keypoint_config(sd: dict, path: str) -> KeypointConfig:
    part = "kp_detector"
    num_blocks = _count(sd, r"predictor\.down_blocks\.down(\d+)\.conv\.weight")
    reshape_channels = _shape(sd, "predictor.conv.weight", part, path)[0]
    kp_shape = _shape(sd, "kp.weight", part, path)
    scale = 1.0
    if "down.weight" in sd:  # anti-aliasing kernel of side 8 sigma + 1, sigma = (1/scale - 1) / 2
        side = sd["down.weight"].shape[-1]
        scale = 1.0 / ((side - 1) / 4.0 + 1.0)
        if gaussian_kernel_size(scale) != side:
            raise CheckpointFormatError(path, f"kp_detector.down.weight has an unexpected size {side}",
                                        expected=[f"{part}.down.weight"])
    return KeypointConfig(
        num_kp=kp_shape[0], block_expansion=_shape(sd, "predictor.down_blocks.down0.conv.weight", part, path)[0] // 2,
        max_features=_widest(sd, r"predictor\.down_blocks\.down\d+\.conv\.weight"), num_blocks=num_blocks,
        reshape_channels=reshape_channels,
        reshape_depth=reshape_channels // _shape(sd, "predictor.up_blocks.up0.conv.weight", part, path)[1],
        kernel_size=kp_shape[-1], scale_factor=scale)


def head_pose_config(sd: dict, path: str) -> HeadPoseConfig:
    part = "he_estimator"
    widths = tuple(_shape(sd, f"conv{i}.weight", part, path)[0] for i in (2, 3, 4, 5))
    return HeadPoseConfig(num_kp=_shape(sd, "fc_exp.weight", part, path)[0] // 3,
                          block_expansion=_shape(sd, "conv1.weight", part, path)[0], widths=widths,
                          num_bins=_shape(sd, "fc_yaw.weight", part, path)[0])


def generator_config(sd: dict, path: str) -> GeneratorConfig:
    part = "generator"
    dm = "dense_motion_network."
    max_features = _shape(sd, "second.weight", part, path)[0]
    feature_channels = _shape(sd, "resblocks_3d.3dr0.conv1.weight", part, path)[0]
    reshape_depth = max_features // feature_channels
    compress = _shape(sd, dm + "compress.weight", part, path)[0]
    num_kp = _shape(sd, dm + "mask.weight", part, path)[0] - 1
    dense_motion = DenseMotionConfig(
        num_kp=num_kp, feature_channels=feature_channels, reshape_depth=reshape_depth,
        block_expansion=_shape(sd, dm + "hourglass.encoder.down_blocks.0.conv.weight", part, path)[0] // 2,
        max_features=_widest(sd, r"dense_motion_network\.hourglass\.encoder\.down_blocks\.\d+\.conv\.weight"),
        num_blocks=_count(sd, r"dense_motion_network\.hourglass\.encoder\.down_blocks\.(\d+)\.conv\.weight"),
        compress=compress, estimate_occlusion_map=dm + "occlusion.weight" in sd)
    return GeneratorConfig(
        block_expansion=_shape(sd, "first.conv.weight", part, path)[0], max_features=max_features,
        num_down_blocks=_count(sd, r"down_blocks\.(\d+)\.conv\.weight"), feature_channels=feature_channels,
        reshape_depth=reshape_depth, num_resblocks=_count(sd, r"resblocks_3d\.3dr(\d+)\.conv1\.weight"),
        spade_hidden=_shape(sd, "decoder.G_middle_0.norm_0.mlp_shared.0.weight", part, path)[0],
        decoder_out_channels=_shape(sd, "decoder.conv_img.weight", part, path)[1], dense_motion=dense_motion)

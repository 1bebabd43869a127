"""The learned face corrector (thesis 3.4): official checkpoint layout, head-pose math, the networks
on a tiny official-layout file, crop -> correct -> paste, the flow, and Face Undistort's modes."""
import math

import numpy as np
import pytest
import torch

from pipelines.common import CheckpointFormatError, InputError
from pipelines.undistort import UndistortSettings, undistort_faces
from pipelines.undistort.facevid2vid.blocks import coordinate_grid
from pipelines.undistort.facevid2vid.dense_motion import DenseMotionConfig, DenseMotionNetwork
from pipelines.undistort.facevid2vid.generator import GeneratorConfig
from pipelines.undistort.facevid2vid.head_pose import (HeadPose, HeadPoseConfig, HeadPoseEstimator,
                                                       bins_to_degrees, posed_keypoints, rotation_matrix)
from pipelines.undistort.facevid2vid.keypoints import KeypointConfig
from pipelines.undistort.facevid2vid.model import (FaceCorrectorNetworks, generator_config, head_pose_config,
                                                   keypoint_config)
from pipelines.undistort.learned import (EXPECTED_KEYS, OFFICIAL_FILENAME, _photo_sampling_map, correct_faces,
                                         load_face_corrector, undistort_faces_learned)
from pipelines.undistort.warp import identity_map
from pipelines.selfie_tools.crop import CropGeometry
from tests.fixtures.build_face_corrector import build, tiny_checkpoint, tiny_configs


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return build(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def corrector(tiny_file):
    return load_face_corrector(str(tiny_file))


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return torch.from_numpy(data.astronaut().astype(np.float32) / 255.0)[None]


def _fake_checkpoint(num_kp=15, drop=()):
    he = {"fc_yaw.weight": torch.zeros(66, 4), "fc_t.weight": torch.zeros(3, 4)}
    ckpt = {
        "generator": {"first.conv.weight": torch.zeros(4, 3, 7, 7)},
        "kp_detector": {"kp.weight": torch.zeros(num_kp, 8, 7, 7, 7), "kp.bias": torch.zeros(num_kp)},
        "he_estimator": dict(he),
        "he_estimator_far": dict(he),
        "epoch_id": 196,  # the official file also carries training bookkeeping
    }
    for k in drop:
        ckpt.pop(k)
    return ckpt


# --- checkpoint layout -------------------------------------------------------------------

def test_tiny_official_layout_loads_strictly_with_sizes_read_from_shapes(tiny_file, corrector):
    assert tiny_file.name == OFFICIAL_FILENAME and tiny_file.parent.name == "face"
    assert corrector.num_keypoints == 15 and corrector.name == OFFICIAL_FILENAME
    checkpoint = torch.load(tiny_file, weights_only=True)
    assert set(EXPECTED_KEYS) < set(checkpoint)
    for name in EXPECTED_KEYS:
        loaded = getattr(corrector.networks, name).state_dict()
        assert set(loaded) == set(checkpoint[name])
        assert all(torch.equal(loaded[k], checkpoint[name][k]) for k in loaded)
    keypoints, head_pose, generator = tiny_configs()
    assert keypoint_config(checkpoint["kp_detector"], "f") == keypoints
    assert head_pose_config(checkpoint["he_estimator"], "f") == head_pose
    assert generator_config(checkpoint["generator"], "f") == generator


def test_official_sizes_give_the_published_key_layout():
    """Spot checks of the official file's tensors (published config eg3d.yaml), built without memory."""
    with torch.device("meta"):
        networks = FaceCorrectorNetworks(KeypointConfig(), HeadPoseConfig(), GeneratorConfig())
    shapes = {k: tuple(v.shape) for k, v in networks.state_dict().items()}
    expected = {
        "kp_detector.down.weight": (3, 1, 13, 13),
        "kp_detector.predictor.conv.weight": (16384, 1024, 1, 1),
        "kp_detector.predictor.up_blocks.up4.conv.weight": (32, 64, 3, 3, 3),
        "kp_detector.kp.weight": (15, 32, 3, 3, 3),
        "he_estimator.block1.b1_2.conv2.weight": (64, 64, 3, 3),
        "he_estimator.block6.skip.weight": (2048, 2048, 1, 1),
        "he_estimator_far.fc_exp.weight": (45, 2048),
        "he_estimator_far.fc_roll.weight": (66, 2048),
        "generator.first.conv.weight": (64, 3, 3, 3),
        "generator.second.weight": (512, 256, 1, 1),
        "generator.resblocks_3d.3dr5.conv2.weight": (32, 32, 3, 3, 3),
        "generator.third.conv.weight": (256, 512, 3, 3),
        "generator.dense_motion_network.compress.weight": (4, 32, 1, 1, 1),
        "generator.dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight": (64, 80, 3, 3, 3),
        "generator.dense_motion_network.hourglass.decoder.conv.weight": (112, 112, 3, 3, 3),
        "generator.dense_motion_network.mask.weight": (16, 112, 7, 7, 7),
        "generator.dense_motion_network.occlusion.weight": (1, 1792, 7, 7),
        "generator.decoder.fc.weight": (512, 256, 3, 3),
        "generator.decoder.G_middle_5.conv_1.weight_orig": (512, 512, 3, 3),
        "generator.decoder.G_middle_5.conv_1.weight_v": (4608,),
        "generator.decoder.up_0.conv_s.weight_u": (256,),
        "generator.decoder.up_1.norm_s.mlp_shared.0.weight": (128, 256, 3, 3),
        "generator.decoder.conv_img.weight": (3, 64, 3, 3),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert "generator.decoder.up_0.conv_s.bias" not in shapes and "generator.decoder.up_0.conv_s.weight" not in shapes
    sds = {name: {k[len(name) + 1:]: v for k, v in networks.state_dict().items() if k.startswith(name + ".")}
           for name in EXPECTED_KEYS}
    assert keypoint_config(sds["kp_detector"], "f") == KeypointConfig()
    assert head_pose_config(sds["he_estimator"], "f") == HeadPoseConfig()
    assert generator_config(sds["generator"], "f") == GeneratorConfig()


def test_missing_far_estimator_names_file_folder_and_keys(tmp_path):
    path = tmp_path / "talking_head.pth.tar"
    torch.save(_fake_checkpoint(drop=("he_estimator_far",)), path)
    with pytest.raises(CheckpointFormatError) as err:
        load_face_corrector(str(path))
    msg = str(err.value)
    assert "talking_head.pth.tar" in msg and str(tmp_path) in msg and "he_estimator_far" in msg


def test_wrong_keypoint_count_and_missing_file(tmp_path):
    path = tmp_path / "fv2v_10kp.pth.tar"
    torch.save(_fake_checkpoint(num_kp=10), path)
    with pytest.raises(CheckpointFormatError, match="10 keypoints"):
        load_face_corrector(str(path))
    with pytest.raises(CheckpointFormatError, match="not found"):
        load_face_corrector(str(tmp_path / "absent.pth.tar"))


def test_a_tensor_of_another_shape_or_a_missing_one_names_network_and_key(tmp_path):
    checkpoint = tiny_checkpoint()
    checkpoint["generator"]["fourth.weight"] = torch.zeros(3, 3, 1, 1)
    path = tmp_path / "bad.pth.tar"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointFormatError, match=r"'generator'.*fourth\.weight: \(3, 3, 1, 1\).*'bad\.pth\.tar'"):
        load_face_corrector(str(path))
    checkpoint = tiny_checkpoint()
    del checkpoint["generator"]["second.weight"]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointFormatError, match=r"'generator' has no 'second\.weight'.*'bad\.pth\.tar'"):
        load_face_corrector(str(path))


# --- head pose math ------------------------------------------------------------------------

def _peaked(*bins, n=66):
    scores = torch.full((len(bins), n), -1e4)
    scores[torch.arange(len(bins)), torch.tensor(bins)] = 0.0
    return scores


def test_bins_to_degrees_is_the_expected_bin_angle():
    assert bins_to_degrees(_peaked(0, 33, 63)).tolist() == pytest.approx([-99.0, 0.0, 90.0])
    two = torch.full((1, 66), -1e4)
    two[0, 33] = two[0, 34] = 0.0  # half 0 degrees, half 3 degrees
    assert bins_to_degrees(two).item() == pytest.approx(1.5)


def test_rotation_from_bins_matches_a_hand_computed_case():
    quarter = 90 / 180 * 3.14  # the checkpoints were trained with pi written as 3.14
    c, s = math.cos(quarter), math.sin(quarter)
    yaw_only = rotation_matrix(torch.tensor([90.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    assert torch.allclose(yaw_only, torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]), atol=1e-6)
    # order R_pitch @ R_yaw @ R_roll: yaw sends x to -z, pitch (about x) then sends -z to +y
    both = rotation_matrix(torch.tensor([90.0]), torch.tensor([90.0]), torch.tensor([0.0]))[0]
    assert torch.allclose(both @ torch.tensor([1.0, 0, 0]), torch.tensor([c, s * s, -s * c]), atol=1e-6)
    roll = rotation_matrix(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([30.0]))[0]
    a = 30 / 180 * 3.14
    assert torch.allclose(roll @ torch.tensor([1.0, 0, 0]), torch.tensor([math.cos(a), math.sin(a), 0.0]), atol=1e-6)


def test_posed_keypoints_rotate_translate_and_add_expression():
    canonical = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    pose = HeadPose(yaw=_peaked(63), pitch=_peaked(33), roll=_peaked(33), translation=torch.tensor([[0.1, 0.2, 0.3]]),
                    expression=torch.tensor([[[0.0, 0.0, 0.01], [0.02, 0.0, 0.0]]]))
    quarter = 90 / 180 * 3.14
    c, s = math.cos(quarter), math.sin(quarter)
    expected = torch.tensor([[[c + 0.1, 0.2, -s + 0.3 + 0.01], [0.1 + 0.02, 0.5 + 0.2, 0.3]]])
    assert torch.allclose(posed_keypoints(canonical, pose), expected, atol=1e-5)


def test_estimator_reads_yaw_from_fc_roll_as_the_published_code():
    torch.manual_seed(0)
    estimator = HeadPoseEstimator(HeadPoseConfig(block_expansion=8, widths=(8, 16, 32, 64))).eval()
    with torch.no_grad():
        for layer, peak in ((estimator.fc_roll, 63), (estimator.fc_pitch, 43), (estimator.fc_yaw, 23)):
            layer.weight.zero_()
            layer.bias.fill_(-1e4)
            layer.bias[peak] = 0.0
        pose = estimator(torch.rand(1, 3, 64, 64))
    yaw, pitch, roll = (d.item() for d in pose.degrees())
    assert (yaw, pitch, roll) == pytest.approx((90.0, 30.0, -30.0))
    assert pose.expression.shape == (1, 15, 3) and pose.translation.shape == (1, 3)


# --- networks ------------------------------------------------------------------------------

def test_dense_motion_is_the_identity_grid_when_the_keypoints_do_not_move():
    torch.manual_seed(0)
    cfg = DenseMotionConfig(feature_channels=4, reshape_depth=2, block_expansion=4, max_features=16, num_blocks=2,
                            compress=1)
    network = DenseMotionNetwork(cfg).eval()
    keypoints = torch.rand(1, 15, 3) * 2 - 1
    with torch.no_grad():
        still = network(torch.randn(1, 4, 2, 16, 16), keypoints, keypoints)
        moved = network(torch.randn(1, 4, 2, 16, 16), keypoints, keypoints + torch.tensor([0.2, 0.0, 0.0]))
    grid = coordinate_grid(2, 16, 16, like=keypoints)
    assert torch.allclose(still.deformation[0], grid, atol=1e-6)
    assert torch.allclose(still.weights.sum(1), torch.ones(1, 2, 16, 16), atol=1e-5)
    assert still.occlusion.shape == (1, 1, 16, 16) and 0 <= still.occlusion.min() <= still.occlusion.max() <= 1
    # every keypoint moved +0.2 in x: features are fetched from 0.2 further left wherever a keypoint dominates
    shift = (grid - moved.deformation[0])[..., 0]
    assert -1e-6 <= shift.min() and shift.max() <= 0.2 + 1e-6 and shift.mean() > 0.01


def test_corrector_networks_shapes_and_range(corrector):
    face = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        out = corrector.networks(face)
    assert out.image.shape == (1, 3, 128, 128) and torch.isfinite(out.image).all()
    assert 0 <= out.image.min() and out.image.max() <= 1
    assert out.deformation.shape == (1, 2, 32, 32, 3) and out.deformation.abs().max() <= 2
    near, far = (torch.stack(p.degrees()) for p in (out.near_pose, out.far_pose))
    assert (near - far).abs().max() > 1.0  # the far estimator changes the pose, so the face is re-rendered


def test_autocast_dtype_stays_close_to_float32(corrector):
    face = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        reference = corrector.networks(face).image
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = corrector.networks(face).image.float()
    assert (reference - low).abs().max() < 0.1
    assert next(corrector.networks.parameters()).dtype == torch.float32


# --- the flow ------------------------------------------------------------------------------

def _centre_grid(depth, h, w):
    """Pixel centres in grid_sample's align_corners=False units: an exact identity deformation."""
    z, y, x = torch.meshgrid(*[(torch.arange(n) + 0.5) / n * 2 - 1 for n in (depth, h, w)], indexing="ij")
    return torch.stack([x, y, z], -1)


def test_sampling_map_follows_the_deformation_from_crop_to_photo():
    # crop = photo pixels (x - 10, y - 20) scaled by 2, 64x64 crop of a 100x120 photo
    geometry = CropGeometry(np.array([[2.0, 0.0, -20.0], [0.0, 2.0, -40.0]]), (100, 120), (64, 64))
    alpha = torch.zeros(100, 120)
    alpha[25:48, 15:38] = 1.0  # fully pasted inside the crop's footprint, untouched elsewhere
    identity = _photo_sampling_map(_centre_grid(2, 16, 16), geometry, alpha)
    assert torch.allclose(identity, identity_map(100, 120), atol=1e-4)
    shifted = _centre_grid(2, 16, 16)
    shifted[..., 0] += 2 * 4 / 64  # features come from 4 crop pixels to the right = 2 photo pixels
    moved = _photo_sampling_map(shifted, geometry, alpha) - identity_map(100, 120)
    assert torch.allclose(moved[25:48, 15:38, 0], torch.full((23, 23), 2.0), atol=1e-4)
    assert moved[..., 1].abs().max() < 1e-4 and moved[alpha == 0].abs().max() == 0


# --- the pipeline and the modes ------------------------------------------------------------

def test_auto_with_the_file_runs_the_learned_corrector_and_says_so(astronaut, corrector):
    result, report = correct_faces("auto", astronaut, UndistortSettings(), corrector)
    assert report.startswith(f"mode auto: ran the learned corrector ({OFFICIAL_FILENAME}")
    assert "head pose near -> far" in report
    assert result.images.shape == astronaut.shape and torch.isfinite(result.images).all()
    assert result.sampling_maps.shape == (1, 512, 512, 2) and result.face_masks.shape == (1, 512, 512)
    diff = (result.images - astronaut).abs().sum(-1)[0]
    mask = result.face_masks[0] > 0.5
    assert mask.float().mean() > 0.01 and diff[mask].mean() > 0.05  # the face was re-rendered
    assert diff[:32, :32].max() == 0 and diff[-32:, -32:].max() == 0  # far from the face: untouched
    moved = (result.sampling_maps[0] - identity_map(512, 512)).norm(dim=-1)
    assert moved[:32, :32].max() == 0 and moved[mask].mean() > 0.1


def test_auto_without_a_corrector_falls_back_to_geometry_and_says_so(astronaut):
    settings = UndistortSettings(distance_m=0.3)
    result, report = correct_faces("auto", astronaut, settings, None)
    assert report.startswith("mode auto: no learned corrector loaded; used geometry.")
    geometric = undistort_faces(astronaut, settings)
    assert torch.equal(result.images, geometric.images)


def test_learned_mode_needs_a_corrector_and_a_face(corrector):
    with pytest.raises(InputError, match="Load Face Corrector"):
        correct_faces("learned", torch.rand(1, 64, 64, 3), UndistortSettings(), None)
    blank = torch.zeros(2, 96, 80, 4)
    with pytest.raises(InputError, match="No face found in image 0"):
        undistort_faces_learned(blank, corrector, landmarks=[[], []])
    passed = undistort_faces_learned(blank, corrector, on_no_face="pass_through", landmarks=[[], []])
    assert torch.equal(passed.images, blank) and "no face" in passed.summary()
    assert torch.equal(passed.sampling_maps[1], identity_map(96, 80))

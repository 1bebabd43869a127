"""The learned face corrector's checkpoint: official layout loads, anything else names file, folder, keys."""
import pytest
import torch

from pipelines.common import CheckpointFormatError
from pipelines.undistort.learned import EXPECTED_KEYS, load_face_corrector


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


def test_official_layout_loads(tmp_path):
    path = tmp_path / "00000196-checkpoint.pth.tar"
    torch.save(_fake_checkpoint(), path)
    weights = load_face_corrector(str(path))
    assert weights.num_keypoints == 15 and set(weights.state_dicts) == set(EXPECTED_KEYS)


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

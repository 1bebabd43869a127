"""BlazePose-33 -> OpenPose-18, the POSE_KEYPOINT JSON and its renderer."""
import numpy as np
import pytest

from pipelines.common.pose import BLAZE_TO_OPENPOSE, blazepose_to_openpose18, openpose_json, people_from_json, render_openpose


def _blaze():
    rng = np.random.default_rng(0)
    lm = np.column_stack([rng.uniform(0.2, 0.8, (33, 2)), np.zeros(33), np.ones(33)])
    return lm


def test_mapping_and_neck():
    lm = _blaze()
    kp = blazepose_to_openpose18(lm, 200, 100)
    assert kp.shape == (18, 3)
    for i, src in enumerate(BLAZE_TO_OPENPOSE):
        if src is not None:
            assert kp[i, :2] == pytest.approx(lm[src, :2] * [200, 100])
    assert kp[1, :2] == pytest.approx((lm[11, :2] + lm[12, :2]) / 2 * [200, 100])


def test_hidden_or_outside_joints_are_zero():
    lm = _blaze()
    lm[28, 3] = 0.05  # right ankle not visible
    lm[0, 0] = 1.4  # nose outside the frame
    kp = blazepose_to_openpose18(lm, 64, 64)
    assert (kp[10] == 0).all() and (kp[0] == 0).all()
    with pytest.raises(ValueError):
        blazepose_to_openpose18(np.zeros((17, 2)), 64, 64)


def test_json_layout_roundtrip_and_render():
    kp = blazepose_to_openpose18(_blaze(), 128, 96)
    entry = openpose_json([kp], 128, 96)
    assert entry["canvas_width"] == 128 and entry["canvas_height"] == 96
    person = entry["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54 and person["face_keypoints_2d"] is None
    assert np.allclose(people_from_json(entry)[0], kp)
    normalised = {"people": [{"pose_keypoints_2d": list((kp / [128, 96, 1]).reshape(-1))}],
                  "canvas_width": 128, "canvas_height": 96}
    assert np.allclose(people_from_json(normalised)[0], kp)
    img = render_openpose(entry)
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8 and img.max() > 0
    assert render_openpose(openpose_json([], 32, 16)).max() == 0

"""Motion clips from video frames: yaw from mediapipe world landmarks, gaps filled, real frames."""
import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.motion import capture


def _skeleton(yaw: float) -> np.ndarray:
    """33 world landmarks of a body facing the camera (subject's right on the image left),
    turned by ``yaw`` about the vertical axis (negative: the nose moves towards image left)."""
    world = np.zeros((33, 3))
    world[capture.LEFT_SHOULDER], world[capture.RIGHT_SHOULDER] = (0.2, -0.5, 0.0), (-0.2, -0.5, 0.0)
    world[capture.LEFT_HIP], world[capture.RIGHT_HIP] = (0.12, 0.0, 0.0), (-0.12, 0.0, 0.0)
    world[0] = (0.0, -0.7, -0.1)  # nose, towards the camera (-z)
    theta = yaw
    rot = np.array([[np.cos(theta), 0, -np.sin(theta)], [0, 1, 0], [np.sin(theta), 0, np.cos(theta)]])
    return world @ rot.T


def test_yaw_from_world_landmarks_recovers_a_full_turn():
    truth = np.linspace(0.0, 2.5 * np.pi, 40)
    yaw = capture.yaw_from_world_landmarks(np.stack([_skeleton(y) for y in truth]))
    np.testing.assert_allclose(yaw, truth, atol=1e-9)


def test_yaw_sign_matches_the_nose_side():
    turned = _skeleton(-0.5)
    assert turned[0, 0] < 0  # nose towards image left
    assert capture.yaw_from_world_landmarks(turned[None])[0] == pytest.approx(-0.5)


def test_missing_frames_take_the_nearest_detection_and_too_few_is_an_error():
    a, b = ("a",), ("b",)
    filled, missing = capture._fill_missing([None, a, None, None, b, b])
    assert missing == 3 and filled == [a, a, a, b, b, b]
    with pytest.raises(InputError, match="only 1 of 4 frames"):
        capture._fill_missing([None, a, None, None])


def test_clip_from_real_frames_mirrored_turns_the_other_way():
    pytest.importorskip("mediapipe")
    from skimage import data

    img = data.astronaut()
    frames = np.stack([img, img[:, ::-1], np.zeros_like(img), img])
    clip, notes = capture.clip_from_frames(frames, fps=10.0, name="astronaut")
    yaw = clip.trajectory.yaw
    assert len(clip.poses) == 4 and len(yaw) == 4 and np.isfinite(yaw).all()
    assert yaw[0] == pytest.approx(-yaw[1], abs=0.15)  # mirror image: opposite turn
    assert yaw[3] == pytest.approx(yaw[0], abs=1e-6)   # same frame, same yaw
    assert notes and "1 frame(s)" in notes[0]
    assert clip.poses[0]["canvas_width"] == img.shape[1]


def test_too_few_frames_is_an_error():
    with pytest.raises(InputError, match="at least 2 video frames"):
        capture.clip_from_frames(np.zeros((1, 8, 8, 3), np.uint8), 30.0, "x")


def test_database_cli_builds_clips_from_videos(tmp_path):
    pytest.importorskip("mediapipe")
    from skimage import data

    from pipelines.motion.database import MotionDatabase, main
    from tests.unit.test_no_opencv import write_video

    img = data.astronaut()
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "turn.avi", [img, img[:, ::-1].copy(), img], fps=10)
    main(["build", str(tmp_path / "db"), "--from-videos", str(tmp_path / "videos"), "--fps", "10"])
    db = MotionDatabase.load(tmp_path / "db")
    assert [c.name for c in db.clips] == ["turn"] and len(db.clips[0].poses) == 3
    assert db.clips[0].trajectory.yaw[0] == pytest.approx(-db.clips[0].trajectory.yaw[1], abs=0.2)

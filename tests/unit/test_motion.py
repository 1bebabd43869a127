"""pipelines/motion: IMU parsing and integration, DTW retrieval, floor planes, bad input."""
import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.motion.background import fit_plane_ransac, ground_normal, place_on_ground, rank_backgrounds
from pipelines.motion.database import MotionClip, MotionDatabase, trajectory_from_poses
from pipelines.motion.imu import imu_to_trajectory, integrate_translation
from pipelines.motion.retrieval import MotionIndex, _features, dtw_retrieve
from pipelines.motion.synthetic import noisy_query, phone_recording, recording_csv, synthetic_clip
from pipelines.motion.trajectory import Trajectory


@pytest.fixture(scope="module")
def db():
    return MotionDatabase.synthetic(60, size=256)


@pytest.fixture(scope="module")
def index(db):
    return MotionIndex([c.trajectory for c in db.clips], [c.name for c in db.clips])


def test_double_integration_recovers_a_known_walk():
    fps, n = 50.0, 400
    t = np.arange(n) / fps
    x = 2.0 * (1 - np.cos(np.pi * t / t[-1])) / 2  # 2 m, starting and ending at rest
    acc = np.gradient(np.gradient(x, 1 / fps), 1 / fps)
    pos = integrate_translation(np.stack([acc, np.zeros(n)], 1), fps)
    assert abs(pos[-1, 0] - 2.0) < 0.05 and np.abs(pos[:, 1]).max() < 1e-9


def test_phone_recording_roundtrip_gives_the_relative_trajectory():
    # a walk that turns 90 deg and ends while still walking (cut from a longer recording);
    # the phone is upright at arm's length and bounces with the steps, no sensor noise
    s = np.linspace(0, 1, 240)
    yaw = 0.7 + np.pi / 2 * s
    heading = np.stack([-np.sin(yaw), np.cos(yaw)], 1)
    trans = np.cumsum(np.full(240, 3.0 / 240)[:, None] * heading, 0)
    clip = Trajectory(yaw, trans, 30.0)
    quiet = dict(warp=0.0, acc_noise=0.0, acc_bias=0.0, gyro_noise=0.0, gyro_bias=0.0, sway_deg=0.0, tilt_err_deg=0.0)
    rec = phone_recording(clip, np.random.default_rng(0), **quiet)
    traj, notes = imu_to_trajectory(recording_csv(rec), fps=clip.fps)
    lead = 15  # the recording starts with 0.5 s of standing still
    rel = clip.relative()
    assert notes == [] and len(traj) == len(clip) + lead
    assert np.abs(traj.yaw[lead:] - rel.yaw).max() < 0.02
    assert np.abs(traj.translation[lead:] - rel.translation).max() < 0.1
    assert abs(traj.translation[-1, 1] - rel.translation[-1, 1]) < 0.05


def test_degrees_quaternions_and_sensorlog_units_are_read():
    n = 100
    t = np.arange(n) / 20
    yaw = np.linspace(0, np.pi / 2, n)
    rows = ["loggingTime,motionQuaternionW,motionQuaternionX,motionQuaternionY,motionQuaternionZ,"
            "motionUserAccelerationX,motionUserAccelerationY,motionUserAccelerationZ"]
    rows += [f"{ti},{np.cos(y / 2)},0,0,{np.sin(y / 2)},0,0,0" for ti, y in zip(t, yaw)]
    traj, notes = imu_to_trajectory("\n".join(rows), fps=20)
    assert abs(traj.yaw[-1] - np.pi / 2) < 1e-3 and "acceleration read as g" in notes
    deg = "time,yaw,ax,ay,az\n" + "\n".join(f"{ti},{np.degrees(y) + 170},0,0,0" for ti, y in zip(t, yaw))
    traj, notes = imu_to_trajectory(deg, fps=20)
    assert abs(traj.yaw[-1] - np.pi / 2) < 1e-3 and "angles read as degrees" in notes


def test_bad_recordings_are_named():
    with pytest.raises(InputError, match=r"Expected a time column.*user_acc_x"):
        imu_to_trajectory("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="too short"):
        imu_to_trajectory("time,yaw,ax,ay,az\n0,0,0,0,0\n0.1,0,0,0,0\n0.2,0,0,0,0\n0.3,0,0,0,0\n0.4,0,0,0,0\n")
    rows = "time,yaw,ax,ay,az\n" + "\n".join(f"{i / 10},0,0,{'nan' if i % 7 == 0 else 0},0" for i in range(40))
    _, notes = imu_to_trajectory(rows)
    assert any("dropped 6 row" in n for n in notes)
    with pytest.raises(InputError, match="samples"):
        Trajectory(np.zeros(5), np.zeros((4, 2)), 30)


def test_yaw_is_compared_on_the_circle():
    a = Trajectory(np.full(30, np.radians(359.0)), np.zeros((30, 2)), 30)
    b = Trajectory(np.full(30, np.radians(1.0)), np.zeros((30, 2)), 30)
    ya, _ = _features(a.relative(), 10)
    # relative() removes the start; compare absolute headings on the circle directly too
    wrap = np.linalg.norm(np.array([np.cos(a.yaw[0]), np.sin(a.yaw[0])]) - [np.cos(b.yaw[0]), np.sin(b.yaw[0])])
    assert wrap < 0.04 and np.allclose(ya, [1.0, 0.0])


def test_retrieval_finds_the_recorded_clip_under_warp_and_noise(db, index):
    rng = np.random.default_rng(3)
    hits = sum(dtw_retrieve(noisy_query(db.clips[i].trajectory, rng), index, k=1)[0].index == i
               for i in range(0, 60, 3))
    assert hits >= 18  # of 20


def test_pruning_returns_the_same_top_k_as_exhaustive(db, index):
    q = noisy_query(db.clips[5].trajectory, np.random.default_rng(0))
    fast = dtw_retrieve(q, index, k=5)
    q_yaw, q_trans = _features(q, index.fps)
    total, _, _ = index.exact(np.arange(len(index)), q_yaw, q_trans, int(0.15 * len(q_yaw)), 0.1)
    assert [m.index for m in fast] == list(np.argsort(total)[:5])


def test_database_roundtrip_and_version_check(tmp_path, db):
    small = MotionDatabase(db.clips[:3], "test")
    small.save(tmp_path)
    loaded = MotionDatabase.load(tmp_path)
    by_name = {c.name: c for c in loaded.clips}
    assert sorted(by_name) == sorted(c.name for c in small.clips)
    assert np.allclose(by_name[small.clips[0].name].trajectory.yaw, small.clips[0].trajectory.yaw, atol=1e-4)
    data = small.clips[0].to_json()
    data["version"] = 99
    with pytest.raises(InputError, match="version 99"):
        MotionClip.from_json(data, "x.json")
    with pytest.raises(InputError, match="lacks yaw"):
        MotionClip.from_json({"poses": []}, "y.json")


def test_poses_give_back_a_coarse_trajectory():
    clip = synthetic_clip(11)
    est = trajectory_from_poses(clip["poses"], 30.0)
    true = clip["trajectory"].relative()
    assert len(est) == len(true)
    # lateral motion follows the truth (the camera faces the person: x is mirrored)
    assert np.corrcoef(est.translation[:, 0], -true.translation[:, 0])[0, 1] > 0.5 or np.ptp(true.translation[:, 0]) < 0.2


def _plane_depth(normal_tilt_deg, h=96, w=128, fov=60.0):
    """Metric depth of a floor 1.5 m below a camera pitched down by the tilt."""
    f = 0.5 * w / np.tan(np.radians(fov) / 2)
    ys, xs = np.mgrid[0:h, 0:w]
    ray = np.stack([(xs - w / 2) / f, -(ys - h / 2) / f, np.ones_like(xs, dtype=float)], -1)
    tilt = np.radians(normal_tilt_deg)
    n = np.array([0.0, np.cos(tilt), -np.sin(tilt)])  # floor normal of a camera pitched down
    denom = ray @ n
    depth = np.where(denom < -1e-3, -1.5 / np.minimum(denom, -1e-3), 0.0)
    return depth, (denom < -1e-3).astype(float), n


def test_ransac_recovers_floor_normals_and_ranks_backgrounds():
    depth, mask, n = _plane_depth(20)
    est = ground_normal(depth, mask, fov_deg=60.0, inverse=False)
    assert np.degrees(np.arccos(min(1.0, abs(est @ n)))) < 1.0
    normals = [ground_normal(*_plane_depth(t)[:2], fov_deg=60.0, inverse=False) for t in (40, 22, 5)]
    assert [i for i, _ in rank_backgrounds(est, normals)] == [1, 2, 0]
    with pytest.raises(InputError, match="fewer than 3"):
        fit_plane_ransac(np.zeros((2, 3)))
    with pytest.raises(InputError, match="must match"):
        ground_normal(depth, mask[:10], 60.0, False)


def test_poses_are_stood_on_the_floor(db):
    poses = db.clips[0].poses
    floor = np.zeros((200, 300))
    floor[150:190, 100:200] = 1
    placed = place_on_ground(poses, floor, 0.5)
    feet = np.array([[p["people"][0]["pose_keypoints_2d"][3 * j + 1] for j in (10, 13)] for p in placed])
    assert placed[0]["canvas_width"] == 300 and abs(feet.max() - 170) < 1.0
    with pytest.raises(InputError, match="floor mask is empty"):
        place_on_ground(poses, np.zeros((10, 10)))

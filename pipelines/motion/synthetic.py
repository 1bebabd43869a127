"""Procedural fit-check motions (walks, turns, twirls, side steps, poses) with their
yaw, root translation and OpenPose-18 keypoints seen by a fixed camera.

This is the built-in motion database (no motion-capture data can be shipped); the
same generator makes noisy IMU-like queries for tests and benchmarks.
"""
import numpy as np

from ..common.pose import openpose_json
from .trajectory import Trajectory

SEGMENTS = ("walk", "turn", "twirl", "side_step", "pause")
# Body joints in the body frame (x right, y up, z forward), metres, OpenPose-18 order.
_BODY = np.array([
    [0.0, 1.62, 0.08], [0.0, 1.45, 0.0], [-0.19, 1.43, 0.0], [-0.24, 1.15, 0.0], [-0.26, 0.88, 0.02],
    [0.19, 1.43, 0.0], [0.24, 1.15, 0.0], [0.26, 0.88, 0.02], [-0.10, 0.95, 0.0], [-0.11, 0.52, 0.0],
    [-0.11, 0.08, 0.0], [0.10, 0.95, 0.0], [0.11, 0.52, 0.0], [0.11, 0.08, 0.0], [-0.035, 1.66, 0.09],
    [0.035, 1.66, 0.09], [-0.08, 1.64, 0.0], [0.08, 1.64, 0.0],
])


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _segment(kind: str, m: int, rng: np.random.Generator) -> tuple:
    """Yaw change [m] and body-frame motion [m, 2] (x right, z forward) of one segment."""
    s = np.linspace(0.0, 1.0, m)
    dyaw = np.zeros(m)
    local = np.zeros((m, 2))
    if kind == "walk":
        dyaw = rng.uniform(-0.8, 0.8) * s  # gently curved
        local[:, 1] = rng.uniform(0.5, 3.0) * s
    elif kind == "turn":
        dyaw = rng.choice([-1, 1]) * rng.uniform(0.3, 1.2) * np.pi * _smoothstep(s)
    elif kind == "twirl":
        dyaw = rng.choice([-1, 1]) * rng.uniform(1.5, 4.5) * np.pi * _smoothstep(s)
    elif kind == "side_step":
        local[:, 0] = rng.choice([-1, 1]) * rng.uniform(0.3, 1.2) * _smoothstep(s)
    elif kind != "pause":
        raise ValueError(f"unknown motion segment {kind!r}; one of {SEGMENTS}")
    return dyaw, local


def motion_trajectory(seconds: float, fps: float, rng: np.random.Generator) -> tuple:
    """A random fit-check motion: 2-4 segments (walk, turn, twirl, side step, pause).
    Returns (Trajectory, segment kinds). Yaw 0 faces +z; heading = (-sin yaw, cos yaw)."""
    kinds = list(rng.choice(SEGMENTS, int(rng.integers(2, 5))))
    lengths = np.maximum((rng.dirichlet(np.full(len(kinds), 3.0)) * seconds * fps).astype(int), 4)
    yaw0, pos0 = 0.0, np.zeros(2)
    yaws, positions = [], []
    for kind, m in zip(kinds, lengths):
        dyaw, local = _segment(kind, m, rng)
        yaw = yaw0 + dyaw
        # body-frame steps turned into the ground frame by the current heading
        steps = np.diff(local, axis=0, prepend=local[:1])
        c, s_ = np.cos(yaw), np.sin(yaw)
        world = np.stack([c * steps[:, 0] - s_ * steps[:, 1], s_ * steps[:, 0] + c * steps[:, 1]], 1)
        pos = pos0 + np.cumsum(world, axis=0)
        yaws.append(yaw)
        positions.append(pos)
        yaw0, pos0 = yaw[-1], pos[-1]
    return Trajectory(np.concatenate(yaws), np.concatenate(positions), fps), kinds


def _joints_world(yaw: float, position: np.ndarray, phase: float) -> np.ndarray:
    body = _BODY.copy()
    swing = 0.25 * np.sin(phase)
    for knee, ankle, sign in ((9, 10, 1), (12, 13, -1)):  # legs swing in opposite phase
        body[knee, 2] += sign * swing * 0.5
        body[ankle, 2] += sign * swing
    for elbow, wrist, sign in ((3, 4, -1), (6, 7, 1)):
        body[elbow, 2] += sign * swing * 0.3
        body[wrist, 2] += sign * swing * 0.6
    c, s = np.cos(yaw), np.sin(yaw)
    x = c * body[:, 0] - s * body[:, 2]
    z = s * body[:, 0] + c * body[:, 2]
    return np.stack([x + position[0], body[:, 1], z + position[1]], axis=1), body


def project_pose(yaw: float, position: np.ndarray, phase: float, width: int, height: int,
                 camera_distance: float = 4.0, fov_deg: float = 50.0) -> np.ndarray:
    """OpenPose-18 [18, 3] pixels for a person seen by a camera at z = -camera_distance
    looking along +z (person facing the camera at yaw = pi)."""
    world, body = _joints_world(yaw + np.pi, position, phase)
    f = 0.5 * height / np.tan(np.radians(fov_deg) / 2)
    depth = world[:, 2] + camera_distance
    u = width / 2 + f * world[:, 0] / depth
    v = height * 0.55 - f * (world[:, 1] - 0.9) / depth
    conf = np.ones(18)
    facing_camera = np.cos(yaw) > -0.2  # yaw 0 faces the camera in this convention
    if not facing_camera:
        conf[[0, 14, 15]] = 0.0  # face keypoints are hidden from behind
    out = np.stack([u, v, conf], axis=1)
    out[conf == 0] = 0.0
    return out


def synthetic_clip(seed: int, fps: float = 30.0, width: int = 512, height: int = 512,
                   seconds: float = None) -> dict:
    rng = np.random.default_rng(seed)
    seconds = seconds or float(rng.uniform(4.0, 10.0))
    traj, kinds = motion_trajectory(seconds, fps, rng)
    kind = "-".join(kinds)
    # The camera faces the person: ground frame turned by pi, walking at yaw 0 comes towards it.
    path = -traj.translation
    start = np.array([rng.uniform(-0.3, 0.3), -path[:, 1].min() + rng.uniform(0.0, 0.5)])
    dist = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(traj.translation, axis=0), axis=1))])
    poses = [openpose_json([project_pose(traj.yaw[i], start + path[i], dist[i] * 6.0, width, height)],
                           width, height) for i in range(len(traj))]
    return {"name": f"synthetic_{kind}_{seed:04d}", "kind": kind, "trajectory": traj, "poses": poses,
            "ground_normal": [0.0, 1.0, 0.0]}


def noisy_query(traj: Trajectory, rng: np.random.Generator, yaw_noise: float = 0.1,
                drift: float = 0.05, warp: float = 0.2) -> Trajectory:
    """An IMU-like observation of a motion: time-warped, noisy yaw, drifting translation,
    arbitrary compass heading and start position."""
    n = len(traj)
    s = np.linspace(0, 1, n)
    warped = np.clip(s + warp * 0.5 * np.sin(np.pi * s) * rng.uniform(-1, 1), 0, 1)
    m = int(n * rng.uniform(1 - warp, 1 + warp))
    src = np.interp(np.linspace(0, 1, m), s, warped) * (n - 1)
    yaw = np.interp(src, np.arange(n), traj.yaw) + rng.normal(0, yaw_noise, m)
    trans = np.stack([np.interp(src, np.arange(n), traj.translation[:, i]) for i in range(2)], 1)
    trans += np.cumsum(rng.normal(0, drift / np.sqrt(m), (m, 2)), axis=0)
    heading = rng.uniform(-np.pi, np.pi)
    c, sn = np.cos(heading), np.sin(heading)
    trans = np.stack([c * trans[:, 0] - sn * trans[:, 1], sn * trans[:, 0] + c * trans[:, 1]], 1)
    return Trajectory(yaw + heading, trans + rng.uniform(-5, 5, 2), traj.fps)


def _warp_source(n: int, rng: np.random.Generator, warp: float, rate_ratio: float) -> np.ndarray:
    """Fractional source-frame positions of a re-timed performance of an n-frame motion."""
    s = np.linspace(0, 1, n)
    warped = np.clip(s + warp * 0.5 * np.sin(np.pi * s) * rng.uniform(-1, 1), 0, 1)
    m = int(n * rate_ratio * rng.uniform(1 - warp, 1 + warp))
    return np.interp(np.linspace(0, 1, m), s, warped) * (n - 1)


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {"x": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def _slow_noise(rng: np.random.Generator, n: int, rate_hz: float, sigma: float, hz: float = 0.5) -> np.ndarray:
    """Band-limited noise (hand sway, sensor-fusion wander) of standard deviation ~sigma."""
    from scipy.ndimage import gaussian_filter1d

    width = rate_hz / (2 * np.pi * hz)
    pad = int(4 * width) + 1  # filtered from a longer draw: no edge effect at either end
    raw = gaussian_filter1d(rng.normal(0, 1, n + 2 * pad), width)[pad:pad + n]
    return sigma * raw / np.sqrt(1 / (2 * np.sqrt(np.pi) * width))  # white noise's std after the filter


def phone_recording(traj: Trajectory, rng: np.random.Generator, rate_hz: float = 100.0, warp: float = 0.1,
                    acc_noise: float = 0.05, acc_bias: float = 0.03, gyro_noise: float = 0.0005,
                    gyro_bias: float = 0.001, sway_deg: float = 1.0, arm_m: float = 0.3,
                    tilt_err_deg: float = 0.3, lead_in_s: float = 0.5) -> dict:
    """A simulated phone recording of a person performing ``traj`` (a database motion),
    the phone held upright in front of the chest, screen to the face: standing still for
    ``lead_in_s``, then the motion re-timed by up to ``warp``; sampled at ``rate_hz``, under an
    arbitrary compass heading.

    Orientation is the phone's fused estimate: the true attitude with integrated gyro
    noise and bias (yaw drift), plus hand sway. User acceleration (device frame, m/s^2)
    is the phone's own acceleration (the body's plus the arm's lever around the turning
    body) with white noise, a constant bias per axis and the gravity that leaks in through
    the fused tilt's error, plus vertical step bounce while walking.
    World frame: x east, y north, z up; yaw counter-clockwise seen from above.
    Returns {"time", "quaternion" [N,4] wxyz, "user_acceleration" [N,3], "yaw", "pitch", "roll"}."""
    from scipy.ndimage import gaussian_filter1d

    dt = 1.0 / rate_hz
    # standing still for lead_in_s before the motion starts (the recording starts at rest)
    src = np.concatenate([np.zeros(int(lead_in_s * rate_hz)), _warp_source(len(traj), rng, warp, rate_hz / traj.fps)])
    n = len(src)
    frames = np.arange(len(traj))
    heading = rng.uniform(-np.pi, np.pi)
    # a body's motion is smooth: the clip's velocity steps become 50 ms accelerations
    yaw = gaussian_filter1d(np.interp(src, frames, traj.yaw), 0.05 * rate_hz, mode="nearest") + heading
    c, s = np.cos(heading), np.sin(heading)
    body = np.stack([np.interp(src, frames, traj.translation[:, i]) for i in range(2)], 1)
    body = gaussian_filter1d(body, 0.05 * rate_hz, axis=0, mode="nearest")
    body = np.stack([c * body[:, 0] - s * body[:, 1], s * body[:, 0] + c * body[:, 1]], 1)
    phone = body + arm_m * np.stack([-np.sin(yaw), np.cos(yaw)], 1)  # held in front, facing the heading
    acc = np.gradient(np.gradient(phone, dt, axis=0), dt, axis=0)
    speed = np.linalg.norm(np.gradient(body, dt, axis=0), axis=1)
    # steps bounce the phone (~1.5 m/s^2 at 1.8 steps/s) whenever the feet move, slow steps too
    bounce = 1.5 * np.clip(speed / 0.2, 0, 1) * np.sin(2 * np.pi * 1.8 * np.arange(n) * dt)
    acc_world = np.concatenate([acc, bounce[:, None]], 1)
    pitch = np.radians(80.0 + rng.uniform(-10, 10)) + np.radians(sway_deg) * _slow_noise(rng, n, rate_hz, 1.0)
    roll = np.radians(sway_deg) * _slow_noise(rng, n, rate_hz, 1.0)
    sway_yaw = np.radians(sway_deg) * _slow_noise(rng, n, rate_hz, 1.0)
    true_rot = _rot("z", yaw + sway_yaw) @ _rot("x", pitch) @ _rot("y", roll)
    # fused estimate: gyro noise and bias integrate into yaw drift; the tilt wanders slowly
    yaw_err = np.cumsum(rng.normal(0, gyro_noise, n)) * np.sqrt(dt) + rng.normal(0, gyro_bias) * np.arange(n) * dt
    tilt_err = np.radians(tilt_err_deg) * np.stack([_slow_noise(rng, n, rate_hz, 1.0, 0.1) for _ in range(2)], 1)
    est_rot = _rot("z", yaw + sway_yaw + yaw_err) @ _rot("x", pitch + tilt_err[:, 0]) @ _rot("y", roll + tilt_err[:, 1])
    leak = 9.80665 * np.stack([tilt_err[:, 1], -tilt_err[:, 0], np.zeros(n)], 1)
    device_acc = np.einsum("nji,nj->ni", true_rot, acc_world + leak)  # world -> device: R^T
    device_acc += rng.normal(0, acc_noise, (n, 3)) + rng.normal(0, acc_bias, 3)
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(est_rot).as_quat()
    return {"time": np.arange(n) * dt, "quaternion": xyzw[:, [3, 0, 1, 2]], "user_acceleration": device_acc,
            "yaw": yaw + sway_yaw + yaw_err, "pitch": pitch + tilt_err[:, 0], "roll": roll + tilt_err[:, 1]}


def recording_csv(rec: dict) -> str:
    """One joined CSV of a phone recording: seconds_elapsed, quaternion, user acceleration."""
    q, a = rec["quaternion"], rec["user_acceleration"]
    lines = ["seconds_elapsed,qw,qx,qy,qz,user_acc_x,user_acc_y,user_acc_z"]
    lines += [f"{t:.4f},{q[i, 0]:.6f},{q[i, 1]:.6f},{q[i, 2]:.6f},{q[i, 3]:.6f},{a[i, 0]:.4f},{a[i, 1]:.4f},{a[i, 2]:.4f}"
              for i, t in enumerate(rec["time"])]
    return "\n".join(lines) + "\n"


def sensor_logger_files(rec: dict) -> dict:
    """The Sensor Logger (Android) export of a phone recording: file name -> CSV text.
    Orientation at half the accelerometer's rate, as the apps log them on separate clocks."""
    from scipy.spatial.transform import Rotation

    t, q, acc = rec["time"], rec["quaternion"], rec["user_acceleration"]
    gravity = Rotation.from_quat(q[:, [1, 2, 3, 0]]).inv().apply([0.0, 0.0, 9.80665])  # world up into the device
    ns = (1.7e18 + t * 1e9).astype(np.int64)
    orientation = ["time,seconds_elapsed,qz,qy,qx,qw,roll,pitch,yaw"]
    orientation += [f"{ns[i]},{t[i]:.4f},{q[i, 3]:.6f},{q[i, 2]:.6f},{q[i, 1]:.6f},{q[i, 0]:.6f},"
                    f"{rec['roll'][i]:.5f},{rec['pitch'][i]:.5f},{-rec['yaw'][i]:.5f}" for i in range(0, len(t), 2)]

    def xyz(v):
        return ["time,seconds_elapsed,z,y,x"] + [f"{ns[i]},{t[i]:.4f},{v[i, 2]:.4f},{v[i, 1]:.4f},{v[i, 0]:.4f}"
                                                 for i in range(len(t))]

    return {"Orientation.csv": "\n".join(orientation) + "\n", "Accelerometer.csv": "\n".join(xyz(acc)) + "\n",
            "Gravity.csv": "\n".join(xyz(gravity)) + "\n"}

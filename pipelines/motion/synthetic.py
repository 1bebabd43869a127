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


def imu_csv(traj: Trajectory) -> str:
    """A phone recording of a trajectory in the columns of the Sensor Logger app:
    seconds_elapsed, yaw/pitch/roll (radians) and user acceleration in the device frame
    (m/s^2), the phone held upright facing the walking direction."""
    dt = 1.0 / traj.fps
    acc = np.gradient(np.gradient(traj.translation, dt, axis=0), dt, axis=0)
    c, s = np.cos(traj.yaw), np.sin(traj.yaw)
    device_x = c * acc[:, 0] + s * acc[:, 1]  # world -> device: rotate by -yaw
    device_y = -s * acc[:, 0] + c * acc[:, 1]
    lines = ["seconds_elapsed,yaw,pitch,roll,user_acc_x,user_acc_y,user_acc_z"]
    for i in range(len(traj)):
        wrapped = (traj.yaw[i] + np.pi) % (2 * np.pi) - np.pi  # phones report yaw in (-pi, pi]
        lines.append(f"{i * dt:.4f},{wrapped:.5f},0,0,{device_x[i]:.5f},{device_y[i]:.5f},0")
    return "\n".join(lines) + "\n"

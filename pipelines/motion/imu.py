"""Phone IMU recordings -> Trajectory (thesis 4.4: yaw from the device orientation;
translation by filtering user acceleration and integrating it twice).

Accepts one CSV with a time column, an orientation (quaternion or yaw[/pitch/roll])
and user acceleration (gravity removed), as exported by common sensor-logger apps
(Sensor Logger, SensorLog, phyphox-style column names).
"""
import csv
import io
import re

import numpy as np
from scipy.signal import butter, filtfilt

from ..common import InputError
from .trajectory import Trajectory

# canonical name -> accepted column names (compared lower-case, without spaces/units)
COLUMNS = {
    "time": ["seconds_elapsed", "time", "timestamp", "t", "motiontimestamp_sincereboot", "loggingtime"],
    "qw": ["qw", "motionquaternionw", "quaternionw", "quat_w", "w"],
    "qx": ["qx", "motionquaternionx", "quaternionx", "quat_x"],
    "qy": ["qy", "motionquaterniony", "quaterniony", "quat_y"],
    "qz": ["qz", "motionquaternionz", "quaternionz", "quat_z"],
    "yaw": ["yaw", "motionyaw", "azimuth", "heading"],
    "pitch": ["pitch", "motionpitch"],
    "roll": ["roll", "motionroll"],
    "ax": ["user_acc_x", "motionuseraccelerationx", "useraccelerationx", "linear_acceleration_x", "ax", "x"],
    "ay": ["user_acc_y", "motionuseraccelerationy", "useraccelerationy", "linear_acceleration_y", "ay", "y"],
    "az": ["user_acc_z", "motionuseraccelerationz", "useraccelerationz", "linear_acceleration_z", "az", "z"],
}
EXPECTED = ("a time column (" + "/".join(COLUMNS["time"][:4]) + "), an orientation as quaternion "
            "(qw,qx,qy,qz) or yaw (yaw/motionYaw/azimuth), and user acceleration "
            "(user_acc_x,user_acc_y,user_acc_z or motionUserAccelerationX/Y/Z or ax,ay,az)")
G = 9.80665
MIN_SECONDS = 1.0


def _key(name: str) -> str:
    return re.sub(r"\(.*?\)|\[.*?\]|[\s]", "", name).lower()


def _find_columns(header: list) -> dict:
    keys = {_key(h): i for i, h in enumerate(header)}
    found = {}
    for canon, names in COLUMNS.items():
        for n in names:
            if n in keys:
                found[canon] = keys[n]
                break
    has_orientation = {"qw", "qx", "qy", "qz"} <= found.keys() or "yaw" in found
    if "time" not in found or not has_orientation or not {"ax", "ay", "az"} <= found.keys():
        raise InputError(f"Unrecognised IMU CSV columns ({len(header)} in the header row). Expected {EXPECTED}.")
    return found


def _parse_datetime(v: str) -> float:
    """Seconds since the epoch of an ISO-like date ("2019-03-06 13:41:47.862 +0100")."""
    v = v.strip()
    m = re.match(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(Z|[+-]\d{2}:?\d{2})?$", v)
    if not m:
        raise InputError(f"Cannot read the IMU time value {v!r}: expected seconds or an ISO date-time.")
    t = np.datetime64(f"{m.group(1)}T{m.group(2)[:15]}").astype("datetime64[us]").astype(np.int64) / 1e6
    tz = m.group(3)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60)
    return t


def _parse_time(values: list) -> np.ndarray:
    try:
        t = np.array([float(v) if v.strip() else np.nan for v in values])
    except ValueError:  # ISO date strings (SensorLog's loggingTime)
        t = np.array([_parse_datetime(v) if v.strip() else np.nan for v in values])
    t = t - np.nanmin(t)
    # The unit follows from the sampling interval (phones log at 10-500 Hz): seconds,
    # milliseconds (Android/most loggers' "timestamp"), microseconds or nanoseconds
    # (Sensor Logger's "time").
    steps = np.diff(np.sort(t[np.isfinite(t)]))
    steps = steps[steps > 0]
    dt = float(np.median(steps)) if len(steps) else 0.0
    if dt > 1e5:
        t = t / 1e9
    elif dt > 500:
        t = t / 1e6
    elif dt > 0.5:
        t = t / 1e3
    return t


def read_imu_csv(text: str) -> dict:
    """Columns as float arrays keyed by canonical name; rows with NaN are dropped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2:
        raise InputError(f"The IMU CSV has no data rows. Expected {EXPECTED}.")
    cols = _find_columns(rows[0])
    data = rows[1:]
    out = {"time": _parse_time([r[cols["time"]] if cols["time"] < len(r) else "" for r in data])}
    for canon, idx in cols.items():
        if canon != "time":
            out[canon] = np.array([_to_float(r[idx]) if idx < len(r) else np.nan for r in data])
    good = np.all(np.isfinite(np.stack(list(out.values()))), axis=0)
    out = {k: v[good] for k, v in out.items()}
    out["dropped_rows"] = int((~good).sum())
    # CoreMotion (SensorLog) reports user acceleration in g; Android and Sensor Logger in m/s^2.
    out["acc_in_g"] = _key(rows[0][cols["ax"]]).endswith("useraccelerationx")
    return out


def _to_float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return np.nan


def _rotation_from_quaternion(qw, qx, qy, qz) -> np.ndarray:
    """[N, 3, 3] device -> world rotations."""
    n = np.sqrt(qw**2 + qx**2 + qy**2 + qz**2)
    w, x, y, z = qw / n, qx / n, qy / n, qz / n
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _rotation_from_euler(yaw, pitch, roll) -> np.ndarray:
    """Z (yaw) * X (pitch) * Y (roll), the device-motion convention of phone APIs."""
    cz, sz, cx, sx, cy, sy = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1), np.stack([zero, zero, one], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cx, -sx], -1), np.stack([zero, sx, cx], -1)], -2)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    return rz @ rx @ ry


def _yaw_from_rotation(rot: np.ndarray) -> np.ndarray:
    """Walking heading of a hand-held phone: the horizontal part of its top (y axis) plus its
    back-camera direction (-z axis). Flat it is the top's heading, upright (portrait, screen
    to the user) the camera's; the sum never vanishes in between, where each alone does."""
    forward = rot[:, :2, 1] - rot[:, :2, 2]
    return np.arctan2(forward[:, 1], forward[:, 0]) - np.pi / 2


def _resample(t: np.ndarray, values: np.ndarray, fps: float) -> tuple:
    t_new = np.arange(int(np.floor(t[-1] * fps + 0.01)) + 1) / fps
    return t_new, np.stack([np.interp(t_new, t, v) for v in np.atleast_2d(values.T)], axis=-1)


def integrate_translation(acc_world: np.ndarray, fps: float, cutoff_hz: float = 3.0) -> np.ndarray:
    """Low-pass the horizontal acceleration, integrate to velocity, remove the velocity's
    linear drift (the recording starts and ends at rest), integrate to position."""
    if len(acc_world) > 12:
        b, a = butter(2, min(cutoff_hz / (fps / 2), 0.99))
        acc_world = filtfilt(b, a, acc_world, axis=0)
    dt = 1.0 / fps
    vel = np.concatenate([np.zeros((1, acc_world.shape[1])), np.cumsum((acc_world[1:] + acc_world[:-1]) / 2 * dt, 0)])
    ramp = np.linspace(0.0, 1.0, len(vel))[:, None]
    vel = vel - ramp * vel[-1]
    return np.concatenate([np.zeros((1, vel.shape[1])), np.cumsum((vel[1:] + vel[:-1]) / 2 * dt, 0)])


def imu_to_trajectory(text: str, fps: float = 30.0, acceleration_unit: str = "auto",
                      angle_unit: str = "auto") -> tuple:
    """Parse a recording -> (Trajectory at ``fps``, list of notes for the user)."""
    cols = read_imu_csv(text)
    notes = []
    if cols["dropped_rows"]:
        notes.append(f"dropped {cols['dropped_rows']} row(s) with missing or non-numeric values")
    t = cols["time"]
    order = np.argsort(t, kind="stable")
    keep = np.concatenate([[True], np.diff(t[order]) > 0])
    idx = order[keep]
    t = t[idx]
    if len(t) < 4 or t[-1] < MIN_SECONDS:
        raise InputError(f"The IMU recording is too short ({len(t)} samples, {t[-1] if len(t) else 0:.2f} s); "
                         f"record at least {MIN_SECONDS:.0f} s of motion.")
    if {"qw", "qx", "qy", "qz"} <= cols.keys():
        rot = _rotation_from_quaternion(*(cols[k][idx] for k in ("qw", "qx", "qy", "qz")))
    else:
        ang = {k: cols.get(k, np.zeros_like(cols["yaw"]))[idx] for k in ("yaw", "pitch", "roll")}
        degrees = angle_unit == "degrees" or (angle_unit == "auto" and np.abs(ang["yaw"]).max() > 2 * np.pi + 0.1)
        if degrees:
            ang = {k: np.radians(v) for k, v in ang.items()}
            notes.append("angles read as degrees")
        rot = _rotation_from_euler(ang["yaw"], ang["pitch"], ang["roll"])
    acc = np.stack([cols[k][idx] for k in ("ax", "ay", "az")], -1)
    in_g = acceleration_unit == "g" or (acceleration_unit == "auto" and cols["acc_in_g"])
    if in_g:
        acc = acc * G
        notes.append("acceleration read as g")
    acc_world = np.einsum("nij,nj->ni", rot, acc)[:, :2]
    yaw = np.unwrap(_yaw_from_rotation(rot))
    t_new, resampled = _resample(t, np.concatenate([yaw[:, None], acc_world], 1), fps)
    translation = integrate_translation(resampled[:, 1:], fps)
    # world (east, north) -> ground-plane (x right, z forward) in the initial heading, by Trajectory.relative
    return Trajectory(resampled[:, 0], translation, fps).relative(), notes

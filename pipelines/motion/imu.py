"""Phone IMU recordings -> Trajectory (thesis 4.4: yaw from the device orientation;
translation by filtering user acceleration and integrating it twice).

Accepts one CSV with a time column, an orientation (quaternion, yaw[/pitch/roll] or
azimuth[/pitch/roll]) and user acceleration (gravity removed), as exported by common
sensor-logger apps (Sensor Logger, SensorLog, phyphox-style column names); folders and
zips of per-sensor files are joined by ``recording.py``.

Conventions of the supported column sets (world frame: x east, y north, z up; the
trajectory's yaw grows counter-clockwise seen from above, i.e. turning left):
- quaternion qw,qx,qy,qz (Android rotation vector, CoreMotion attitude, Sensor Logger's
  Orientation.csv): device -> world rotation of a right-handed world with z up; used as is.
- yaw[,pitch,roll] / motionYaw,... (CoreMotion Euler angles, SensorLog): yaw counter-clockwise
  about z; R = Rz(yaw) Rx(pitch) Ry(roll).
- azimuth[,pitch,roll] / heading (Android SensorManager.getOrientation, compass headings):
  azimuth clockwise from north (east = +90 deg), Android's pitch positive when the top edge
  tips down; R = Rz(-azimuth) Rx(-pitch) Ry(roll).
- user acceleration in the device frame. Android and Sensor Logger-on-Android: m/s^2, the
  accelerating force (moving the phone to its right reads +x). CoreMotion columns
  (motionUserAcceleration*, userAcceleration*): g, the inertial force (the opposite sign),
  converted here. Sensor Logger's own files from an iPhone follow iOS's sign; ``recording.py``
  tells the two apart by the sign of the Gravity file.
"""
import csv
import io
import re

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
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
    "yaw": ["yaw", "motionyaw"],
    "azimuth": ["azimuth", "heading"],
    "pitch": ["pitch", "motionpitch"],
    "roll": ["roll", "motionroll"],
    "ax": ["user_acc_x", "motionuseraccelerationx", "useraccelerationx", "linear_acceleration_x", "ax", "x"],
    "ay": ["user_acc_y", "motionuseraccelerationy", "useraccelerationy", "linear_acceleration_y", "ay", "y"],
    "az": ["user_acc_z", "motionuseraccelerationz", "useraccelerationz", "linear_acceleration_z", "az", "z"],
}
EXPECTED = ("a time column (" + "/".join(COLUMNS["time"][:4]) + "), an orientation as quaternion "
            "(qw,qx,qy,qz), yaw (yaw/motionYaw, counter-clockwise) or azimuth (azimuth/heading, clockwise), "
            "and user acceleration "
            "(user_acc_x,user_acc_y,user_acc_z or motionUserAccelerationX/Y/Z or ax,ay,az)")
G = 9.80665
MIN_SECONDS = 1.0
MAX_RATE_HZ = 500.0
PHONE_ARM_M = 0.3  # a hand-held phone in front of the chest, from the body's vertical axis
# Standing still: user acceleration RMS (m/s^2) and turn rate (rad/s) below these over the window.
STILL_ACC, STILL_TURN, STILL_WINDOW_S = 0.3, 0.3, 0.5


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
    has_orientation = {"qw", "qx", "qy", "qz"} <= found.keys() or "yaw" in found or "azimuth" in found
    if "time" not in found or not has_orientation or not {"ax", "ay", "az"} <= found.keys():
        raise InputError(f"Unrecognised IMU CSV columns ({len(header)} in the header row). Expected {EXPECTED}.")
    return found


def _parse_datetime(v: str) -> float:
    """Seconds since the epoch of an ISO-like date ("2019-03-06 13:41:47.862 +0100"); NaN if it is none."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(Z|[+-]\d{2}:?\d{2})?$", v.strip())
    if not m:
        return np.nan
    try:
        t = np.datetime64(f"{m.group(1)}T{m.group(2)[:15]}").astype("datetime64[us]").astype(np.int64) / 1e6
    except ValueError:  # a date-shaped cell that is no date (month 13)
        return np.nan
    tz = m.group(3)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60)
    return t


def time_seconds(values: list) -> np.ndarray:
    """A time column in seconds (not shifted to 0), NaN for each unreadable cell: numbers or
    ISO date-times (SensorLog's loggingTime), whichever most cells are."""
    numbers = np.array([_to_float(v) for v in values])
    if np.isfinite(numbers).sum() * 2 < len(values):
        dates = np.array([_parse_datetime(v) for v in values])
        if np.isfinite(dates).sum() > np.isfinite(numbers).sum():
            return dates
    if not np.isfinite(numbers).any():
        raise InputError(f"Cannot read any IMU time value (first: {values[0]!r}): expected seconds, "
                         "milliseconds, nanoseconds or ISO date-times in the time column.")
    # The unit follows from the sampling interval (phones log at 10-500 Hz): seconds,
    # milliseconds (Android/most loggers' "timestamp"), microseconds or nanoseconds
    # (Sensor Logger's "time").
    steps = np.diff(np.sort(numbers[np.isfinite(numbers)]))
    steps = steps[steps > 0]
    dt = float(np.median(steps)) if len(steps) else 0.0
    scale = 1e9 if dt > 1e5 else 1e6 if dt > 500 else 1e3 if dt > 0.5 else 1.0
    return numbers / scale


def read_imu_csv(text: str) -> dict:
    """Columns as float arrays keyed by canonical name; rows with NaN are dropped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2:
        raise InputError(f"The IMU CSV has no data rows. Expected {EXPECTED}.")
    cols = _find_columns(rows[0])
    data = rows[1:]
    t = time_seconds([r[cols["time"]] if cols["time"] < len(r) else "" for r in data])
    out = {"time": t - np.nanmin(t)}
    for canon, idx in cols.items():
        if canon != "time":
            out[canon] = np.array([_to_float(r[idx]) if idx < len(r) else np.nan for r in data])
    good = np.all(np.isfinite(np.stack(list(out.values()))), axis=0)
    out = {k: v[good] for k, v in out.items()}
    out["dropped_rows"] = int((~good).sum())
    # CoreMotion (SensorLog) reports user acceleration in g and as inertial force; Android and
    # Sensor Logger in m/s^2 as accelerating force.
    out["coremotion"] = _key(rows[0][cols["ax"]]).endswith("useraccelerationx")
    return out


def _to_float(v: str) -> float:
    try:
        return float(v)
    except ValueError:  # also "" and text: the row is dropped
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


def _uniform_clock(t: np.ndarray, fps: float) -> tuple:
    """The recording's own sampling rate (at least ``fps``, at most MAX_RATE_HZ) as a uniform clock.
    Acceleration is filtered and integrated at this rate: sampling it at the output fps first
    would alias step impacts (a 10 ms peak falls between 30 fps samples or lands on one)."""
    rate = float(np.clip(1.0 / np.median(np.diff(t)), fps, MAX_RATE_HZ))
    n = int(round(t[-1] * rate)) + 1
    return np.linspace(0.0, t[-1], n), (n - 1) / t[-1]


def _interp(t_new: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t_new, t, v) for v in values.T], axis=-1)


def still_samples(acc_device: np.ndarray, yaw: np.ndarray, rate: float) -> np.ndarray:
    """Where the person stands still: little user acceleration (walking bounces the phone by
    ~1-3 m/s^2, turning swings it) and little turning, over STILL_WINDOW_S."""
    size = max(int(STILL_WINDOW_S * rate), 1)
    acc_rms = np.sqrt(np.maximum(uniform_filter1d(np.sum(acc_device**2, axis=1), size, mode="nearest"), 0))
    turn_rate = np.abs(uniform_filter1d(np.gradient(yaw) * rate, size, mode="nearest"))
    quiet = (acc_rms < STILL_ACC) & (turn_rate < STILL_TURN)
    # still only where the whole window around a sample is quiet (not the start or end of a move)
    return minimum_filter1d(quiet.astype(np.uint8), size, mode="nearest").astype(bool)


def integrate_translation(acc_world: np.ndarray, fps: float, still=None, cutoff_hz: float = 3.0) -> np.ndarray:
    """Low-pass the horizontal acceleration and integrate it twice, starting at rest.

    Velocity drift (sensor bias, gravity leaking through the tilt estimate) is removed where
    the person is known to stand still (``still``, a boolean per sample; zero-velocity
    updates): the velocity there is the drift, interpolated linearly in between and held after
    the last still sample. A recording may end while moving: nothing is assumed about its end."""
    if len(acc_world) > 12:
        b, a = butter(2, min(cutoff_hz / (fps / 2), 0.99))
        acc_world = filtfilt(b, a, acc_world, axis=0)
    dt = 1.0 / fps
    zero = np.zeros((1, acc_world.shape[1]))
    vel = np.concatenate([zero, np.cumsum((acc_world[1:] + acc_world[:-1]) / 2 * dt, 0)])
    if still is not None and np.any(still[1:]):
        vel = vel - _velocity_drift(vel, np.asarray(still, bool))
    return np.concatenate([zero, np.cumsum((vel[1:] + vel[:-1]) / 2 * dt, 0)])


def _velocity_drift(vel: np.ndarray, still: np.ndarray) -> np.ndarray:
    """The velocity error: the velocity itself where still, linear in between, held after the last still sample."""
    still = still.copy()
    still[0] = True  # recordings start at rest
    idx = np.flatnonzero(still)
    return _interp(np.arange(len(vel)), idx, vel[idx])


def imu_to_trajectory(text: str, fps: float = 30.0, acceleration_unit: str = "auto",
                      angle_unit: str = "auto") -> tuple:
    """Parse a recording -> (Trajectory at ``fps``, list of notes for the user)."""
    return columns_to_trajectory(read_imu_csv(text), fps, acceleration_unit, angle_unit)


def _rotation(cols: dict, idx: np.ndarray, angle_unit: str, notes: list) -> np.ndarray:
    if {"qw", "qx", "qy", "qz"} <= cols.keys():
        return _rotation_from_quaternion(*(cols[k][idx] for k in ("qw", "qx", "qy", "qz")))
    heading = "yaw" if "yaw" in cols else "azimuth"
    ang = {k: cols.get(k, np.zeros_like(cols[heading]))[idx] for k in (heading, "pitch", "roll")}
    degrees = angle_unit == "degrees" or (angle_unit == "auto" and np.abs(ang[heading]).max() > 2 * np.pi + 0.1)
    if degrees:
        ang = {k: np.radians(v) for k, v in ang.items()}
        notes.append("angles read as degrees")
    if heading == "azimuth":  # Android: clockwise azimuth, pitch positive top-down
        notes.append("azimuth read as clockwise from north")
        return _rotation_from_euler(-ang["azimuth"], -ang["pitch"], ang["roll"])
    return _rotation_from_euler(ang["yaw"], ang["pitch"], ang["roll"])


def columns_to_trajectory(cols: dict, fps: float = 30.0, acceleration_unit: str = "auto",
                          angle_unit: str = "auto") -> tuple:
    """Canonical columns (``read_imu_csv``'s dict) -> (Trajectory at ``fps``, notes)."""
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
    rot = _rotation(cols, idx, angle_unit, notes)
    acc_raw = np.stack([cols[k][idx] for k in ("ax", "ay", "az")], -1)
    if cols["coremotion"]:
        acc_raw = -acc_raw
        notes.append("acceleration sign flipped (iOS inertial-force convention)")
    in_g = acceleration_unit == "g" or (acceleration_unit == "auto" and cols["coremotion"])
    if in_g:
        acc_raw = acc_raw * G
        notes.append("acceleration read as g")
    clock, rate = _uniform_clock(t, fps)
    yaw = np.interp(clock, t, np.unwrap(_yaw_from_rotation(rot)))
    acc = _interp(clock, t, acc_raw)
    acc_world = _interp(clock, t, np.einsum("nij,nj->ni", rot, acc_raw))
    # The phone circles the body at arm's length when the person turns; the database holds the
    # body's path. The arm's acceleration is taken off before the low-pass: a twirl's centripetal
    # acceleration (0.3 m x (2 turns/s)^2 = 47 m/s^2) has content above its cut-off, and what the
    # filter removes from it would otherwise stay in the path as metres of error.
    lever = PHONE_ARM_M * np.stack([-np.sin(yaw), np.cos(yaw)], 1)
    lever_acc = np.diff(lever, 2, axis=0, prepend=lever[:1], append=lever[-1:]) * rate**2  # second difference
    still = still_samples(acc, yaw, rate)
    translation = integrate_translation(acc_world[:, :2] - lever_acc, rate, still)
    t_out = np.arange(int(np.floor(t[-1] * fps + 0.01)) + 1) / fps
    standing = (np.argmin(still) if not still.all() else len(still)) / rate  # the leading still run
    # world (east, north) -> ground-plane (x right, z forward) in the initial heading, by Trajectory.relative
    trajectory = Trajectory(np.interp(t_out, clock, yaw), _interp(t_out, clock, translation), fps, standing)
    return trajectory.relative(), notes

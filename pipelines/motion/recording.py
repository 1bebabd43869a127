"""A phone recording as ComfyUI's input folder holds it: one joined CSV, or a sensor-logger
export (Sensor Logger: Orientation.csv + Accelerometer.csv, or TotalAcceleration.csv +
Gravity.csv, one file per sensor) as a folder or a .zip of one. Sensor Logger's files:
Orientation.csv time,seconds_elapsed,qz,qy,qx,qw,roll,pitch,yaw; Accelerometer.csv (gravity
removed), Gravity.csv and TotalAcceleration.csv time,seconds_elapsed,z,y,x in m/s^2, with
iOS's sign on an iPhone (opposite to Android's; told apart by the way gravity points).

Per-sensor files are joined on the accelerometer's clock (orientation interpolated to it,
over the time both cover). Zips are read in memory: members are matched by their base name
only (their paths never reach the file system) and refused past size limits.
"""
import csv
import io
import os
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..common import InputError
from .imu import _key, _rotation_from_quaternion, _to_float, columns_to_trajectory, imu_to_trajectory, time_seconds

MAX_FILE_BYTES = 256 * 2**20  # one sensor file (~2 h at 100 Hz is ~100 MB)
MAX_TOTAL_BYTES = 1024 * 2**20
MAX_RATIO = 200  # uncompressed / compressed: CSV compresses ~10x, bombs ~1000x
MAX_MEMBERS = 1000
ORIENTATION, USER_ACC, TOTAL_ACC, GRAVITY = "orientation.csv", "accelerometer.csv", "totalacceleration.csv", "gravity.csv"
EXPORT_FILES = "Orientation.csv with Accelerometer.csv (or TotalAcceleration.csv and Gravity.csv)"


def is_export_folder(path) -> bool:
    return os.path.isdir(path) and any(n.lower() == ORIENTATION for n in os.listdir(path))


def recording_to_trajectory(path, fps: float = 30.0, acceleration_unit: str = "auto",
                            angle_unit: str = "auto") -> tuple:
    """A .csv, a folder or a .zip -> (Trajectory, notes), as ``imu.imu_to_trajectory``."""
    path = Path(path)
    name = path.name
    if path.is_dir():
        files = _folder_files(path)
    elif path.suffix.lower() == ".zip":
        files = _zip_files(path)
    else:
        return imu_to_trajectory(_read_limited(path), fps, acceleration_unit, angle_unit)
    if ORIENTATION not in files:
        csvs = [n for n in files if n.endswith(".csv")]
        if len(csvs) == 1:  # a zipped joined CSV
            return imu_to_trajectory(files[csvs[0]], fps, acceleration_unit, angle_unit)
        raise InputError(f"'{name}' holds no sensor-logger export: expected {EXPORT_FILES} "
                         f"(found: {', '.join(sorted(files)) or 'no CSV files'}).")
    cols, notes = join_export(files, name)
    traj, more = columns_to_trajectory(cols, fps, acceleration_unit, angle_unit)
    return traj, notes + more


def _read_limited(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"'{path.name}' is larger than {MAX_FILE_BYTES >> 20} MB; trim the recording.")
    return path.read_text(encoding="utf-8", errors="replace")


def _folder_files(folder: Path) -> dict:
    """Lower-case name -> text of the CSVs directly in the folder (links are not followed)."""
    files = {}
    for entry in os.scandir(folder):
        if entry.name.lower().endswith(".csv") and entry.is_file(follow_symlinks=False):
            files[entry.name.lower()] = _read_limited(Path(entry.path))
    return files


def _zip_files(path: Path) -> dict:
    """Lower-case base name -> text of the zip's CSV members, read in memory within the limits."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise InputError(f"'{path.name}' is not a readable zip ({e}); re-export the recording.") from None
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(".csv")]
        if len(members) > MAX_MEMBERS:
            raise InputError(f"'{path.name}' holds {len(members)} CSV files; a recording has a few.")
        files, total = {}, 0
        for info in members:
            name = PurePosixPath(info.filename.replace("\\", "/")).name.lower()
            if name.startswith(".") or name in files:  # macOS resource forks, duplicates in sub-folders
                continue
            if info.file_size > MAX_FILE_BYTES or info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise InputError(f"'{path.name}': member {name} unpacks to {info.file_size >> 20} MB "
                                 f"from {info.compress_size >> 10} KB; refused (limit {MAX_FILE_BYTES >> 20} MB, "
                                 f"ratio {MAX_RATIO}).")
            with archive.open(info) as member:
                data = member.read(MAX_FILE_BYTES + 1)  # the header's sizes may lie
            total += len(data)
            if len(data) > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
                raise InputError(f"'{path.name}' unpacks to more than the {MAX_TOTAL_BYTES >> 20} MB allowed.")
            files[name] = data.decode("utf-8", errors="replace")
    return files


def _table(text: str, source: str, columns: tuple) -> tuple:
    """(time in seconds, {column: values}) of one sensor file; rows with an unreadable cell are dropped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2:
        raise InputError(f"{source} has no data rows.")
    keys = {_key(h): i for i, h in enumerate(rows[0])}
    time_key = next((k for k in ("seconds_elapsed", "time", "timestamp") if k in keys), None)
    missing = [c for c in columns if c not in keys]
    if time_key is None or missing:
        raise InputError(f"{source} lacks the column(s) {', '.join(missing or ['seconds_elapsed'])} "
                         f"(it has {', '.join(rows[0])}); expected a Sensor Logger export.")
    data = rows[1:]

    def column(key):
        i = keys[key]
        return [r[i] if i < len(r) else "" for r in data]

    t = time_seconds(column(time_key))
    values = {c: np.array([_to_float(v) for v in column(c)]) for c in columns}
    good = np.isfinite(t) & np.all(np.isfinite(np.stack(list(values.values()))), axis=0)
    order = np.argsort(t[good], kind="stable")
    return t[good][order], {c: v[good][order] for c, v in values.items()}, int((~good).sum())


def _aligned_quaternions(q: np.ndarray) -> np.ndarray:
    """q and -q are one rotation: flip signs so neighbours agree before interpolating."""
    flips = np.concatenate([[1.0], np.sign(np.sum(q[1:] * q[:-1], axis=1) + 1e-12)])
    return q * np.cumprod(flips)[:, None]


def join_export(files: dict, name: str) -> tuple:
    """Sensor-logger files -> canonical columns for ``imu.columns_to_trajectory``, and notes."""
    notes = []
    t_q, q, bad = _table(files[ORIENTATION], f"{name}/Orientation.csv", ("qw", "qx", "qy", "qz"))
    dropped = bad
    gravity = None
    if USER_ACC in files:
        t_a, acc, bad = _table(files[USER_ACC], f"{name}/Accelerometer.csv", ("x", "y", "z"))
        dropped += bad
        acc = np.stack([acc["x"], acc["y"], acc["z"]], 1)
        if GRAVITY in files:
            t_g, g, bad = _table(files[GRAVITY], f"{name}/Gravity.csv", ("x", "y", "z"))
            gravity = (t_g, np.stack([g["x"], g["y"], g["z"]], 1))
    elif TOTAL_ACC in files and GRAVITY in files:
        t_a, total, bad = _table(files[TOTAL_ACC], f"{name}/TotalAcceleration.csv", ("x", "y", "z"))
        t_g, g, bad_g = _table(files[GRAVITY], f"{name}/Gravity.csv", ("x", "y", "z"))
        dropped += bad + bad_g
        g = np.stack([g["x"], g["y"], g["z"]], 1)
        gravity = (t_g, g)
        acc = np.stack([total["x"], total["y"], total["z"]], 1) - _interp_rows(t_a, t_g, g)
        notes.append("user acceleration = TotalAcceleration - Gravity")
    else:
        raise InputError(f"'{name}' has Orientation.csv but no acceleration: add Accelerometer.csv "
                         "(or TotalAcceleration.csv and Gravity.csv) to the export.")
    if dropped:
        notes.append(f"dropped {dropped} row(s) with an unreadable time or value")
    start, end = max(t_q[0], t_a[0]), min(t_q[-1], t_a[-1])
    keep = (t_a >= start) & (t_a <= end)
    if keep.sum() < 4:
        raise InputError(f"'{name}': the orientation and acceleration files do not overlap in time.")
    clock = t_a[keep]
    quat = _interp_rows(clock, t_q, _aligned_quaternions(np.stack([q[k] for k in ("qw", "qx", "qy", "qz")], 1)))
    acc = acc[keep]
    if gravity is not None and _gravity_points_down(clock, quat, gravity):
        acc = -acc  # Sensor Logger on an iPhone keeps iOS's inertial-force sign (gravity reads down)
        notes.append("iPhone export: acceleration sign flipped to the accelerating-force convention")
    cols = {"time": clock - clock[0], "qw": quat[:, 0], "qx": quat[:, 1], "qy": quat[:, 2], "qz": quat[:, 3],
            "ax": acc[:, 0], "ay": acc[:, 1], "az": acc[:, 2], "dropped_rows": 0, "coremotion": False}
    return cols, notes


def _interp_rows(t_new: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t_new, t, v) for v in values.T], axis=1)


def _gravity_points_down(clock, quat, gravity) -> bool:
    """Android's Gravity reads +9.8 m/s^2 up (the force holding the phone), iOS's -1 g down."""
    g = _interp_rows(clock, *gravity)
    up = np.einsum("nj,nj->n", _rotation_from_quaternion(*quat.T)[:, 2, :], g)
    return float(np.median(up)) < 0

"""IMU loader: time units, phones held flat or upright, SensorLog dates with time zones."""
import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.motion.imu import imu_to_trajectory


@pytest.mark.parametrize("scale,offset", [(1.0, 0.0), (1e3, 1.7e12), (1e6, 0.0), (1e9, 1.7e18)])
def test_time_units_follow_the_sampling_interval(scale, offset):
    t = np.arange(200) / 50.0  # 4 s at 50 Hz
    rows = ["timestamp,yaw,ax,ay,az"] + [f"{offset + ti * scale:.0f}" if scale > 1 else f"{ti}" for ti in t]
    rows = [rows[0]] + [f"{r},0.1,0,0,0" for r in rows[1:]]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=25)
    assert abs(traj.duration_s - 4.0) < 0.1


def _qmul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)


@pytest.mark.parametrize("pitch_deg", [0, 45, 88, 90])
def test_heading_of_a_phone_held_flat_or_upright(pitch_deg):
    rng = np.random.default_rng(0)
    n = 120
    rows = ["seconds_elapsed,qw,qx,qy,qz,user_acc_x,user_acc_y,user_acc_z"]
    for i, yaw in enumerate(np.linspace(0, np.pi / 2, n)):
        p = np.radians(pitch_deg) + rng.normal(0, 0.02)
        q = _qmul((np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)), (np.cos(p / 2), np.sin(p / 2), 0, 0))
        rows.append(f"{i / 30},{q[0]},{q[1]},{q[2]},{q[3]},0,0,0")
    traj, _ = imu_to_trajectory("\n".join(rows), fps=30)
    assert abs(np.degrees(traj.yaw[-1]) - 90) < 3 and np.degrees(np.abs(traj.yaw)).max() < 95


def test_millisecond_timestamps_at_400_hz():
    rows = ["timestamp,yaw,ax,ay,az"] + [f"{1.7e12 + i * 2.5:.1f},0.1,0,0,0" for i in range(1600)]  # 4 s
    traj, _ = imu_to_trajectory("\n".join(rows), fps=25)
    assert abs(traj.duration_s - 4.0) < 0.1


def test_sensorlog_logging_time_with_timezone_and_bad_dates():
    head = "loggingTime(txt),motionYaw(rad),motionUserAccelerationX(G),motionUserAccelerationY(G),motionUserAccelerationZ(G)"
    rows = [head] + [f"2019-03-06 13:41:{47 + i * 0.05:06.3f} +0100,0,0,0,0" for i in range(60)]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=20)
    assert abs(traj.duration_s - 3.0) < 0.1
    with pytest.raises(InputError, match="time value"):
        imu_to_trajectory(head + "\nyesterday,0,0,0,0\ntoday,0,0,0,0\n")


# --- axis and sign conventions, on excerpts laid out like real exports -----------------------
# One motion throughout, in hand-computed device readings at 50 Hz: the phone is held upright
# (tilted 10 deg back from vertical) facing north; the person stands 1 s, turns 90 deg
# clockwise seen from above (to face east) over 1 s, stands 0.5 s, then walks forward 1 m
# (+1 m/s^2 for 1 s, -1 m/s^2 for 1 s) and stands 1 s. Documented result: yaw turns
# counter-clockwise-positive, so it ends at -pi/2; forward after a right turn is +x. The
# loader puts the body 0.3 m behind the phone, which spun in place here: the body's path
# ends at (1 - 0.3, 0.3).
RATE, TILT = 50.0, np.radians(80.0)
END_TRANSLATION = (0.7, 0.3)


def _motion():
    t = np.arange(int(5.5 * RATE)) / RATE
    heading_cw = np.clip(t - 1.0, 0.0, 1.0) * np.pi / 2  # clockwise from north
    forward_acc = np.where((t >= 2.5) & (t < 3.5), 1.0, 0.0) - np.where((t >= 3.5) & (t < 4.5), 1.0, 0.0)
    # world forward acceleration in the device frame: R = Rz(.) Rx(80 deg), R^T (0, a, 0) rotated into the heading
    device = np.stack([np.zeros_like(t), forward_acc * np.cos(TILT), -forward_acc * np.sin(TILT)], 1)
    return t, heading_cw, device


def _check(traj):
    assert traj.yaw[-1] == pytest.approx(-np.pi / 2, abs=0.005)
    assert traj.translation[-1] == pytest.approx(END_TRANSLATION, abs=0.003)  # 0.3 % of the walk


def test_sensor_logger_quaternions_and_android_acceleration():
    t, cw, acc = _motion()
    # quaternion of Rz(-cw) Rx(80 deg): (cos(-cw/2), 0, 0, sin(-cw/2)) x (cos 40, sin 40, 0, 0)
    a, d, e, f = np.cos(-cw / 2), np.sin(-cw / 2), np.cos(TILT / 2), np.sin(TILT / 2)
    qw, qx, qy, qz = a * e, a * f, d * f, d * e
    rows = ["time,seconds_elapsed,qz,qy,qx,qw,roll,pitch,yaw,z,y,x"]
    rows += [f"{1.7e18 + ti * 1e9:.0f},{ti},{qz[i]},{qy[i]},{qx[i]},{qw[i]},0,{TILT},{cw[i]},"
             f"{acc[i, 2]},{acc[i, 1]},{acc[i, 0]}" for i, ti in enumerate(t)]
    traj, notes = imu_to_trajectory("\n".join(rows), fps=30)
    assert notes == []
    _check(traj)


def test_android_azimuth_is_clockwise_and_its_pitch_is_top_down():
    t, cw, acc = _motion()
    # SensorManager.getOrientation in degrees: azimuth clockwise, pitch -80 when the top is up
    rows = ["timestamp,azimuth,pitch,roll,linear_acceleration_x,linear_acceleration_y,linear_acceleration_z"]
    rows += [f"{ti * 1000:.0f},{np.degrees(cw[i])},-80,0,{acc[i, 0]},{acc[i, 1]},{acc[i, 2]}" for i, ti in enumerate(t)]
    traj, notes = imu_to_trajectory("\n".join(rows), fps=30)
    assert "azimuth read as clockwise from north" in notes and "angles read as degrees" in notes
    _check(traj)


def test_coremotion_yaw_is_counter_clockwise_and_acceleration_is_inertial_force_in_g():
    t, cw, acc = _motion()
    inertial_g = -acc / 9.80665
    rows = ["loggingTime,motionYaw,motionPitch,motionRoll,motionUserAccelerationX,motionUserAccelerationY,"
            "motionUserAccelerationZ"]
    rows += [f"{ti},{-cw[i]},{TILT},0,{inertial_g[i, 0]},{inertial_g[i, 1]},{inertial_g[i, 2]}" for i, ti in enumerate(t)]
    traj, notes = imu_to_trajectory("\n".join(rows), fps=30)
    assert "acceleration read as g" in notes
    _check(traj)


def test_still_detection_thresholds():
    from pipelines.motion.imu import PHONE_ARM_M, STILL_ACC, STILL_TURN, STILL_WINDOW_S, still_samples

    assert (STILL_ACC, STILL_TURN, STILL_WINDOW_S, PHONE_ARM_M) == (0.3, 0.3, 0.5, 0.3)
    n, rate = 200, 100.0
    flat = np.zeros(n)
    for level, still in ((0.28, True), (0.32, False)):
        acc = np.stack([np.full(n, level), flat, flat], 1)
        assert still_samples(acc, flat, rate).all() == still
    for turn_rate, still in ((0.28, True), (0.32, False)):
        assert still_samples(np.zeros((n, 3)), turn_rate * np.arange(n) / rate, rate).all() == still
    # a bounce in samples 100-149: still only where the 50-sample window around a sample is quiet
    acc = np.zeros((n, 3))
    acc[100:150, 2] = 1.5
    expected = np.ones(n, bool)
    expected[100 - 25 - 25:150 + 25 + 25] = False  # the RMS window reaches 25 out, then the erosion 25 more
    got = still_samples(acc, flat, rate)
    assert got[:45].all() and not got[55:195].any() and got.sum() == pytest.approx(expected.sum(), abs=12)


def test_zero_velocity_updates_remove_a_bias_and_a_recording_may_end_moving():
    from pipelines.motion.imu import integrate_translation

    rate = 100.0
    t = np.arange(int(4 * rate)) / rate
    walk = np.where((t >= 1) & (t < 2), 1.0, 0.0) - np.where((t >= 2) & (t < 3), 1.0, 0.0)  # 1 m
    still = (t < 0.75) | (t >= 3.25)  # as still_samples marks it: clear of the 3 Hz filter's spread
    biased = np.stack([walk + 0.05, np.full_like(t, -0.05)], 1)
    pos = integrate_translation(biased, rate, still)
    assert pos[-1] == pytest.approx([1.0, 0.0], abs=0.02)  # 1 + 0.5 * 0.05 * 16 = 1.4 m without the updates
    # still only at the end: the start counts as at rest, the bias drift is removed from t = 0
    pos = integrate_translation(biased, rate, t >= 3.25)
    assert pos[-1] == pytest.approx([1.0, 0.0], abs=0.02)
    # accelerate for 1 s to 1 m/s and keep walking: 0.5 + 2 = 2.5 m, although the end is not at rest
    moving = np.stack([np.where((t >= 1) & (t < 2), 1.0, 0.0), np.zeros_like(t)], 1)
    pos = integrate_translation(moving, rate, t < 0.75)
    assert pos[-1, 0] == pytest.approx(2.5, abs=0.03)


def _sensor_logger_export(sign=1.0, bad_time_row=None):
    """Orientation.csv at 50 Hz and Accelerometer.csv / Gravity.csv at 100 Hz starting 0.05 s
    later, as Sensor Logger writes them (``sign`` -1: an iPhone's inertial-force convention)."""
    t, cw, _ = _motion()
    a, d, e, f = np.cos(-cw / 2), np.sin(-cw / 2), np.cos(TILT / 2), np.sin(TILT / 2)
    orientation = ["time,seconds_elapsed,qz,qy,qx,qw,roll,pitch,yaw"]
    orientation += [f"{1.7e18 + ti * 1e9:.0f},{ti},{d[i] * e},{d[i] * f},{a[i] * f},{a[i] * e},0,{TILT},{cw[i]}"
                    for i, ti in enumerate(t)]
    t_acc = np.arange(0.05, t[-1], 0.01)
    forward = np.interp(t_acc, t, _motion()[2][:, 1] / np.cos(TILT))
    rows = ["time,seconds_elapsed,z,y,x"]
    rows += [f"{1.7e18 + ti * 1e9:.0f},{ti},{-sign * forward[i] * np.sin(TILT)},{sign * forward[i] * np.cos(TILT)},0"
             for i, ti in enumerate(t_acc)]
    if bad_time_row is not None:
        rows[bad_time_row] = "," + "n/a," + rows[bad_time_row].split(",", 2)[2]
    gravity = ["time,seconds_elapsed,z,y,x"] + [f"0,{ti},{sign * 9.81 * np.cos(TILT)},{sign * 9.81 * np.sin(TILT)},0"
                                                for ti in t_acc]
    return {"Orientation.csv": orientation, "Accelerometer.csv": rows, "Gravity.csv": gravity,
            "Metadata.csv": ["version,device name,platform", "1,phone,android"]}


def test_sensor_logger_export_folder_is_joined_by_time(tmp_path):
    from pipelines.motion.recording import recording_to_trajectory

    for name, lines in _sensor_logger_export().items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    traj, notes = recording_to_trajectory(tmp_path, fps=30)
    _check(traj)
    assert not any("dropped" in n for n in notes)


def test_zipped_iphone_export_with_an_unreadable_time_cell(tmp_path):
    import zipfile

    from pipelines.motion.recording import recording_to_trajectory

    path = tmp_path / "walk.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, lines in _sensor_logger_export(sign=-1.0, bad_time_row=40).items():
            z.writestr(f"walk-2024-01-01_12-00-00/{name}", "\n".join(lines) + "\n")
    traj, notes = recording_to_trajectory(path, fps=30)
    _check(traj)
    assert "dropped 1 row(s) with an unreadable time or value" in notes
    assert any("iPhone export" in n for n in notes)


def test_total_acceleration_minus_gravity(tmp_path):
    from pipelines.motion.recording import recording_to_trajectory

    files = _sensor_logger_export()
    user = files.pop("Accelerometer.csv")
    gravity = files["Gravity.csv"]
    total = [user[0]] + [",".join([u.split(",")[0], u.split(",")[1]] + [
        str(float(a) + float(b)) for a, b in zip(u.split(",")[2:], g.split(",")[2:])]) for u, g in zip(user[1:], gravity[1:])]
    files["TotalAcceleration.csv"] = total
    for name, lines in files.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    traj, notes = recording_to_trajectory(tmp_path, fps=30)
    _check(traj)
    assert "user acceleration = TotalAcceleration - Gravity" in notes


def test_zip_members_are_matched_by_name_only_and_bombs_refused(tmp_path):
    import zipfile

    from pipelines.motion.recording import recording_to_trajectory

    inside = tmp_path / "inside"
    inside.mkdir()
    path = inside / "odd.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, (name, lines) in zip(["../Orientation.csv", "/abs/Accelerometer.csv", "a/../../Gravity.csv",
                                          "Metadata.csv"], _sensor_logger_export().items()):
            z.writestr(member, "\n".join(lines) + "\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _check(recording_to_trajectory(path, fps=30)[0])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing extracted anywhere
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Orientation.csv", "0" * (8 << 20))  # 8 MB of zeros deflate ~1000x
    with pytest.raises(InputError, match="refused"):
        recording_to_trajectory(bomb)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="Orientation.csv with Accelerometer.csv"):
        recording_to_trajectory(tmp_path / "nothing")


def test_one_unreadable_time_cell_drops_its_row():
    rows = ["seconds_elapsed,yaw,ax,ay,az"] + [f"{i / 20},0.1,0,0,0" for i in range(60)]
    rows[30] = "12:0x,0.1,0,0,0"
    traj, notes = imu_to_trajectory("\n".join(rows), fps=20)
    assert "dropped 1 row(s) with missing or non-numeric values" in notes and abs(traj.duration_s - 3.0) < 0.1


def test_a_twirl_at_arms_length_leaves_the_body_in_place():
    # Standing 1 s, two turns counter-clockwise in 1 s (yaw = 4 pi s^3 (10 - 15 s + 6 s^2), whose
    # angular acceleration is 0 at both ends), standing 2 s; the phone flat, 0.3 m in front of a
    # body that does not move: its acceleration is the arm's, 0.3 (sin y y'^2 - cos y y'',
    # -cos y y'^2 - sin y y''), peaking at 0.3 x (7.5 pi)^2 = 167 m/s^2, read in the device frame
    # Rz(-yaw). The body's path stays at the origin (before: 0.2 m off mid-twirl, the 3 Hz
    # low-pass having cut the arm's acceleration but not the subtracted arm).
    t = np.arange(400) / 100.0
    s = np.clip(t - 1.0, 0.0, 1.0)
    yaw = 4 * np.pi * s**3 * (10 - 15 * s + 6 * s * s)
    rate = 4 * np.pi * 30 * s * s * (1 - s) ** 2
    angular_acc = 4 * np.pi * 60 * s * (1 - s) * (1 - 2 * s)
    ax = 0.3 * (np.sin(yaw) * rate**2 - np.cos(yaw) * angular_acc)
    ay = 0.3 * (-np.cos(yaw) * rate**2 - np.sin(yaw) * angular_acc)
    dx, dy = np.cos(yaw) * ax + np.sin(yaw) * ay, -np.sin(yaw) * ax + np.cos(yaw) * ay
    rows = ["seconds_elapsed,qw,qx,qy,qz,user_acc_x,user_acc_y,user_acc_z"]
    rows += [f"{ti},{np.cos(yaw[i] / 2)},0,0,{np.sin(yaw[i] / 2)},{dx[i]},{dy[i]},0" for i, ti in enumerate(t)]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=30)
    assert traj.yaw[-1] == pytest.approx(4 * np.pi, abs=1e-6)
    assert np.abs(traj.translation).max() < 0.005


def test_the_standing_start_is_measured_for_the_start_heading():
    # 100 Hz, standing for 2 s (samples 0-199), then 3 m/s^2 of bounce. The 0.5 s RMS window of
    # sample k covers samples k - 25 .. k + 24: one bounce sample in it is 3 / sqrt(50) = 0.42 m/s^2,
    # above STILL_ACC, so k <= 175 are quiet; still needs the window around k quiet too: k + 24 <= 175,
    # samples 0..151, 1.52 s. Relative() and resampled() keep it.
    rows = ["seconds_elapsed,qw,qx,qy,qz,user_acc_x,user_acc_y,user_acc_z"]
    rows += [f"{i / 100},1,0,0,0,0,0,{3.0 if i >= 200 else 0.0}" for i in range(400)]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=30)
    assert traj.still_s == pytest.approx(1.52, abs=1e-9)
    assert traj.relative().still_s == traj.resampled(10.0).still_s == traj.still_s


# --- the time column and quaternions, by hand -------------------------------------------------

def test_iso_date_times_are_read_in_utc_with_their_offsets():
    from datetime import datetime, timezone

    from pipelines.motion.imu import _parse_datetime

    def utc(*fields):  # the expected instant, by the standard library, to the microsecond
        # (pytest.approx's default relative tolerance would allow half an hour at 1.6e9 s)
        return pytest.approx(datetime(*fields, tzinfo=timezone.utc).timestamp(), rel=0, abs=1e-6)

    assert _parse_datetime("2019-03-06 13:41:47.862 +0100") == utc(2019, 3, 6, 12, 41, 47, 862000)
    assert _parse_datetime("2019-03-06T13:41:47.862-05:30") == utc(2019, 3, 6, 19, 11, 47, 862000)
    assert _parse_datetime("2019-03-06 13:41:47+1045") == utc(2019, 3, 6, 2, 56, 47)
    assert _parse_datetime("2019-03-06T13:41:47Z") == utc(2019, 3, 6, 13, 41, 47)
    assert _parse_datetime(" 2019-03-06 13:41:47.5 ") == utc(2019, 3, 6, 13, 41, 47, 500000)
    assert np.isnan(_parse_datetime("2019-13-06 13:41:47")) and np.isnan(_parse_datetime("13:41:47"))


@pytest.mark.parametrize("step,scale", [(0.02, 1.0), (20, 1e3), (20_000, 1e6), (20_000_000, 1e9)])
def test_time_values_are_scaled_to_seconds_exactly(step, scale):
    from pipelines.motion.imu import time_seconds

    values = [str(i * step) for i in range(200)]  # 50 Hz in s, ms, us or ns
    assert np.allclose(time_seconds(values), np.arange(200) * step / scale, rtol=0, atol=1e-12)


def test_repeated_timestamps_do_not_set_the_unit():
    from pipelines.motion.imu import time_seconds

    values = [str(20 * (i // 3)) for i in range(300)]  # ms, each written on three rows
    assert time_seconds(values)[-1] == pytest.approx(20 * 99 / 1e3)


def test_a_mixed_time_column_is_read_as_the_kind_most_cells_are():
    from pipelines.motion.imu import time_seconds

    dates = ["2019-03-06T13:41:47Z", "2019-03-06T13:41:48Z", "2019-03-06T13:41:49Z"]
    t = time_seconds(dates + ["5", "6"])  # 3 date-times, 2 numbers: date-times
    assert t[2] - t[0] == 2.0 and np.isnan(t[3:]).all()
    t = time_seconds(dates[:2] + ["5.00", "5.01", "5.02"])  # 2 date-times, 3 numbers (s at 100 Hz): numbers
    assert np.isnan(t[:2]).all() and list(t[2:]) == [5.0, 5.01, 5.02]


def test_an_unreadable_time_column_names_its_first_cell():
    from pipelines.motion.imu import time_seconds

    with pytest.raises(InputError, match="first: 'noon'"):
        time_seconds(["noon", "later"])


def test_a_quaternion_need_not_be_unit_length():
    from pipelines.motion.imu import _rotation_from_quaternion

    half = np.radians(45.0)
    q = np.array([[np.cos(half), 0.0, 0.0, np.sin(half)]])  # 90 deg about z
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for length in (1.0, 3.0, 0.2):
        assert np.allclose(_rotation_from_quaternion(*(q * length).T)[0], rz90, atol=1e-12)


def test_quaternions_against_scipy():
    from scipy.spatial.transform import Rotation

    from pipelines.motion.imu import _rotation_from_quaternion

    q = np.random.default_rng(3).normal(size=(6, 4)) * 2.0  # w, x, y, z; of any length
    expected = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy orders x, y, z, w
    assert np.allclose(_rotation_from_quaternion(*q.T), expected, atol=1e-12)


def _still_rows(seconds, rate=50.0, header="time,yaw,ax,ay,az", az=0.0):
    n = int(round(seconds * rate)) + 1  # samples at 0 .. seconds inclusive
    return [header] + [f"{i / rate},0.1,0,0,{az}" for i in range(n)]


def test_one_second_is_the_shortest_recording():
    traj, _ = imu_to_trajectory("\n".join(_still_rows(1.0)), fps=30)  # last sample at exactly 1.0 s
    assert len(traj) == 31  # frames at 0, 1/30, .., 30/30 s
    with pytest.raises(InputError, match=r"too short \(50 samples, 0.98 s\); record at least 1 s"):
        imu_to_trajectory("\n".join(_still_rows(0.98)), fps=30)
    with pytest.raises(InputError, match=r"too short \(3 samples"):
        imu_to_trajectory("\n".join(["time,yaw,ax,ay,az", "0,0,0,0,0", "1,0,0,0,0", "2,0,0,0,0"]), fps=30)
    four = imu_to_trajectory("\n".join(["time,yaw,ax,ay,az"] + [f"{i * 0.4},0,0,0,0" for i in range(4)]), fps=10)[0]
    assert len(four) == 13  # 4 samples over 1.2 s are enough: frames 0 .. 1.2 s at 10 fps


def test_output_frames_run_from_zero_to_the_last_sample():
    for seconds, fps, frames in ((2.0, 30, 61), (2.0, 25, 51), (2.03, 30, 61), (2.04, 30, 62)):
        traj, _ = imu_to_trajectory("\n".join(_still_rows(seconds, rate=100.0)), fps=fps)
        assert (len(traj), traj.fps) == (frames, fps), (seconds, fps)
    # a steady turn at 0.5 rad/s, read at every frame's time
    rows = ["time,yaw,ax,ay,az"] + [f"{i / 100},{0.5 * i / 100},0,0,0" for i in range(201)]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=25)
    assert np.allclose(np.abs(traj.yaw), 0.5 * np.arange(51) / 25, atol=1e-9)


def test_a_recording_that_never_moves_stands_still_throughout():
    traj, _ = imu_to_trajectory("\n".join(_still_rows(3.0)), fps=30)
    assert traj.still_s == pytest.approx(3.0 + 1 / 50.0)  # every sample, 151 at 50 Hz
    assert np.abs(traj.translation).max() == 0.0 and np.abs(traj.yaw).max() == 0.0


def test_acceleration_in_g_when_asked():
    push = lambda i: 1.0 if 100 <= i < 150 else -1.0 if 150 <= i < 200 else 0.0  # noqa: E731 (a step forward)
    rows = ["time,yaw,ax,ay,az"] + [f"{i / 100},0,{push(i)},0,0" for i in range(400)]
    in_g, notes = imu_to_trajectory("\n".join(rows), fps=30, acceleration_unit="g")
    in_ms2, plain = imu_to_trajectory("\n".join(rows), fps=30)
    assert "acceleration read as g" in notes and "acceleration read as g" not in plain
    # a 0.25 m step in m/s^2 is 9.81 times as long in g (the still detection's edges move a little with the
    # amplitude, hence 1 %)
    assert in_ms2.translation[-1, 0] == pytest.approx(0.25, abs=0.01)
    assert in_g.translation[-1, 0] == pytest.approx(9.80665 * in_ms2.translation[-1, 0], rel=0.01)


def test_coremotion_notes_say_what_was_converted():
    rows = ["loggingTime,motionYaw,motionPitch,motionRoll,motionUserAccelerationX,motionUserAccelerationY,"
            "motionUserAccelerationZ"] + [f"{i / 50},0.1,0,0,0,0,0" for i in range(150)]
    _, notes = imu_to_trajectory("\n".join(rows), fps=30)
    assert notes[:2] == ["acceleration sign flipped (iOS inertial-force convention)", "acceleration read as g"]


def test_translation_is_a_3_hz_butterworth_both_ways_then_two_trapezoid_integrals():
    from scipy.integrate import cumulative_trapezoid
    from scipy.signal import butter, filtfilt

    from pipelines.motion.imu import integrate_translation

    def expected(acc, rate, filtered=True):
        if filtered:
            acc = filtfilt(*butter(2, 3.0 / (rate / 2)), acc, axis=0)
        vel = cumulative_trapezoid(acc, dx=1 / rate, axis=0, initial=0)
        return cumulative_trapezoid(vel, dx=1 / rate, axis=0, initial=0)

    acc = np.random.default_rng(4).normal(size=(300, 2))
    for rate in (100.0, 30.0):
        assert np.allclose(integrate_translation(acc, rate), expected(acc, rate), rtol=0, atol=1e-12)
    # from 13 samples on (more than filtfilt's padding needs) the acceleration is filtered; 12 are integrated as read
    assert np.allclose(integrate_translation(acc[:13], 100.0), expected(acc[:13], 100.0), rtol=0, atol=1e-12)
    assert np.allclose(integrate_translation(acc[:12], 100.0), expected(acc[:12], 100.0, False), rtol=0, atol=1e-12)


def test_euler_angles_against_scipy():
    from scipy.spatial.transform import Rotation

    from pipelines.motion.imu import _rotation_from_euler

    yaw, pitch, roll = np.random.default_rng(6).uniform(-np.pi, np.pi, size=(3, 5))
    # intrinsic Z (yaw), then X (pitch), then Y (roll): R = Rz Rx Ry
    expected = Rotation.from_euler("ZXY", np.stack([yaw, pitch, roll], 1)).as_matrix()
    assert np.allclose(_rotation_from_euler(yaw, pitch, roll), expected, atol=1e-12)


def test_angle_units_explicit_and_by_range():
    turn = [f"{i / 50},{h},0,0,0" for i, h in enumerate(np.linspace(0, 9, 151))]  # 0 -> 9 over 3 s
    as_degrees, notes = imu_to_trajectory("\n".join(["time,yaw,ax,ay,az"] + turn), fps=30)
    assert "angles read as degrees" in notes  # 9 is beyond a turn in radians (2 pi + 0.1)
    assert np.abs(as_degrees.yaw[-1]) == pytest.approx(np.radians(9), abs=1e-6)
    small = [f"{i / 50},{h},0,0,0" for i, h in enumerate(np.linspace(0, 3, 151))]
    as_radians, notes = imu_to_trajectory("\n".join(["time,yaw,ax,ay,az"] + small), fps=30)
    assert "angles read as degrees" not in notes and np.abs(as_radians.yaw[-1]) == pytest.approx(3.0, abs=1e-6)
    told, notes = imu_to_trajectory("\n".join(["time,yaw,ax,ay,az"] + small), fps=30, angle_unit="degrees")
    assert "angles read as degrees" in notes and np.abs(told.yaw[-1]) == pytest.approx(np.radians(3), abs=1e-6)


def test_a_recording_without_acceleration_columns_is_refused():
    with pytest.raises(InputError, match="IMU CSV"):
        imu_to_trajectory("\n".join(["time,yaw"] + [f"{i / 50},0.1" for i in range(100)]))


def test_a_short_last_row_is_dropped_not_a_crash():
    rows = ["time,yaw,ax,ay,az"] + [f"{i / 50},0.1,0,0,0" for i in range(100)] + ["2.0,0.1"]
    traj, notes = imu_to_trajectory("\n".join(rows), fps=25)
    assert "dropped 1 row(s) with missing or non-numeric values" in notes
    assert len(traj) == 50  # up to the last full row, at 1.98 s

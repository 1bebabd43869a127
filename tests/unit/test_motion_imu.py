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


def test_sensorlog_logging_time_with_timezone_and_bad_dates():
    head = "loggingTime(txt),motionYaw(rad),motionUserAccelerationX(G),motionUserAccelerationY(G),motionUserAccelerationZ(G)"
    rows = [head] + [f"2019-03-06 13:41:{47 + i * 0.05:06.3f} +0100,0,0,0,0" for i in range(60)]
    traj, _ = imu_to_trajectory("\n".join(rows), fps=20)
    assert abs(traj.duration_s - 3.0) < 0.1
    with pytest.raises(InputError, match="time value"):
        imu_to_trajectory(head + "\nyesterday,0,0,0,0\ntoday,0,0,0,0\n")

"""What retrieval compares: yaw and ground-plane translation over time, expressed
relative to the start (the phone's compass heading and the database camera's frame
differ, so only the motion relative to its first frame is comparable)."""
from dataclasses import dataclass

import numpy as np

from ..common import InputError


@dataclass
class Trajectory:
    """yaw [T] radians (unwrapped), translation [T, 2] metres (x right, z forward), fps;
    still_s: how long the person stands still at the start, where a recording knows it (0: unknown)."""
    yaw: np.ndarray
    translation: np.ndarray
    fps: float
    still_s: float = 0.0

    def __post_init__(self):
        self.yaw = np.asarray(self.yaw, dtype=np.float64).reshape(-1)
        self.translation = np.asarray(self.translation, dtype=np.float64).reshape(-1, 2)
        if len(self.yaw) != len(self.translation):
            raise InputError(f"yaw has {len(self.yaw)} samples but translation has {len(self.translation)}; "
                             "both must describe the same frames.")
        if not (np.isfinite(self.yaw).all() and np.isfinite(self.translation).all()):
            raise InputError("The trajectory contains NaN or infinite values.")

    def __len__(self) -> int:
        return len(self.yaw)

    @property
    def duration_s(self) -> float:
        return len(self) / self.fps

    def relative(self, yaw0: float = None) -> "Trajectory":
        """Yaw from 0 and translation from the origin, rotated into the initial heading
        (``yaw0``, by default the first sample's)."""
        yaw0 = self.yaw[0] if yaw0 is None else yaw0
        c, s = np.cos(-yaw0), np.sin(-yaw0)
        d = self.translation - self.translation[0]
        rotated = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1)
        return Trajectory(self.yaw - yaw0, rotated, self.fps, self.still_s)

    def resampled(self, fps: float) -> "Trajectory":
        t_old = np.arange(len(self)) / self.fps
        t_new = np.arange(int(np.floor(t_old[-1] * fps + 0.01)) + 1) / fps
        yaw = np.interp(t_new, t_old, self.yaw)
        trans = np.stack([np.interp(t_new, t_old, self.translation[:, i]) for i in range(2)], axis=1)
        return Trajectory(yaw, trans, fps, self.still_s)

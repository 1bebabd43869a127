"""bench/motion_retrieval.py's hit rule: which returned motions count as the query's own."""
import importlib.util
from pathlib import Path

import numpy as np

from pipelines.motion.trajectory import Trajectory


def _bench():
    path = Path(__file__).resolve().parents[2] / "bench" / "motion_retrieval.py"
    spec = importlib.util.spec_from_file_location("motion_retrieval_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clip(yaw, forward):
    return Trajectory(yaw, np.stack([np.zeros(len(forward)), forward], 1), 30.0)


def test_a_copy_that_holds_its_last_pose_longer_is_the_same_motion():
    # The generator rounds segment lengths down: two clips of standing still come as 298 and 299
    # frames, identical otherwise, and retrieval finds both at distance 0.
    same_motion = _bench().same_motion
    walk = np.linspace(0.0, 1.0, 298)
    trajs = [
        _clip(np.zeros(298), np.zeros(298)),  # 0: standing still, 298 frames
        _clip(np.zeros(299), np.zeros(299)),  # 1: the same, 299 frames
        _clip(np.r_[np.zeros(298), 0.01], np.zeros(299)),  # 2: turns 0.01 rad in its extra frame
        _clip(np.zeros(298), walk),  # 3: a 1 m walk
        _clip(np.zeros(299), np.r_[walk, 1.0]),  # 4: the walk, then standing one frame
        _clip(np.zeros(299), np.r_[walk, 1.0 + 1 / 297]),  # 5: the walk one frame further
        _clip(np.zeros(298), np.r_[walk[:-1], 0.99]),  # 6: differs in its last frame
    ]
    assert same_motion(trajs, 0, 1) and same_motion(trajs, 1, 0)
    assert same_motion(trajs, 3, 4) and same_motion(trajs, 4, 3)
    assert same_motion(trajs, 2, 2)
    assert not same_motion(trajs, 0, 2) and not same_motion(trajs, 1, 2)
    assert not same_motion(trajs, 3, 5) and not same_motion(trajs, 3, 6) and not same_motion(trajs, 0, 3)

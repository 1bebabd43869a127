"""Motion database build, feature precomputation and retrieval stop at their next cancel point;
a broken clip file is reported by name and position."""
import json

import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.common.progress import Progress
from pipelines.motion.database import MotionDatabase
from pipelines.motion.retrieval import BATCH, MotionIndex, dtw_retrieve
from pipelines.motion.trajectory import Trajectory


class Cancelled(Exception):
    pass


def _cancel_after(n: int) -> tuple:
    seen = []

    def callback(done, total, preview):
        seen.append(done)
        if len(seen) >= n:
            raise Cancelled

    return Progress(10_000, callback), seen


def test_building_5000_clips_stops_at_the_next_clip():
    progress, seen = _cancel_after(3)
    with pytest.raises(Cancelled):
        MotionDatabase.synthetic(5000, size=64, progress=progress)
    assert seen == [1, 2, 3]


def test_loading_and_indexing_stop_at_the_next_clip(tmp_path):
    MotionDatabase.synthetic(6, size=64).save(tmp_path)
    progress, seen = _cancel_after(2)
    with pytest.raises(Cancelled):
        MotionDatabase.load(tmp_path, progress=progress)
    assert len(seen) == 2
    flat = Trajectory(np.zeros(40), np.zeros((40, 2)), 30.0)
    progress, seen = _cancel_after(4)
    with pytest.raises(Cancelled):
        MotionIndex([flat] * 1000, [str(i) for i in range(1000)], progress=progress)
    assert len(seen) == 4


def test_retrieval_stops_after_a_batch():
    rng = np.random.default_rng(0)
    trajs = [Trajectory(np.cumsum(rng.normal(0, 0.05, 60)), np.zeros((60, 2)), 30.0) for _ in range(3 * BATCH)]
    index = MotionIndex(trajs, [str(i) for i in range(len(trajs))])
    progress, seen = _cancel_after(1)
    with pytest.raises(Cancelled):
        dtw_retrieve(Trajectory(np.linspace(0, 3, 60), np.zeros((60, 2)), 30.0), index, k=5, progress=progress)
    assert seen == [1]


def test_a_broken_clip_file_is_named_with_its_position(tmp_path):
    MotionDatabase.synthetic(2, size=64).save(tmp_path)
    broken = sorted(tmp_path.glob("*.json"))[1]
    text = broken.read_text()
    broken.write_text(text[:200])  # cut off mid-way, as an interrupted copy leaves it
    with pytest.raises(InputError) as err:
        MotionDatabase.load(tmp_path)
    message = str(err.value)
    assert str(broken) in message and "line 1, column " in message and "rebuild the database" in message
    json.loads(text)  # the intact file was valid

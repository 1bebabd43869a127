"""Build Motion Clip in the real server: a clip saved from frames is listed by the database loader."""
import json

import pytest

from scripts.harness.server import WorkflowError

pytest.importorskip("mediapipe")


def _prompt(name: str, database: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},
            "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
            "3": {"class_type": "RecomposeBuildMotionClip",
                  "inputs": {"frames": ["2", 0], "fps": 10.0, "name": name, "database": database,
                             "body_height_m": 1.7}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}}}


def test_build_motion_clip_saves_a_loadable_clip(comfy):
    comfy.run(_prompt("astronaut_still", "recompose_test_db"), timeout=180)
    saved = comfy.base / "models" / "recompose" / "motion" / "recompose_test_db" / "astronaut_still.json"
    clip = json.loads(saved.read_text())
    assert len(clip["poses"]) == 3 and len(clip["yaw"]) == 3
    assert max(clip["yaw"]) - min(clip["yaw"]) < 1e-6  # three identical frames: no turn
    combo = comfy.object_info()["RecomposeMotionDatabase"]["input"]["required"]["database"]
    assert "recompose_test_db" in combo[1]["options"]  # the loader lists the new database


def test_unsafe_clip_name_is_refused(comfy):
    with pytest.raises(WorkflowError, match="may only hold letters"):
        comfy.run(_prompt("../escape", "recompose_test_db"), timeout=60)

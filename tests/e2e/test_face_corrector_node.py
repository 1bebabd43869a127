"""The learned face corrector in the real server: the official-layout file loads from the face folder,
'learned' re-renders the face and leaves the corners alone, and the report says which corrector ran."""
import numpy as np
import pytest
from PIL import Image

from scripts.harness.server import WorkflowError

pytest.importorskip("mediapipe")


def _prompt(mode: str, checkpoint: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},
            "2": {"class_type": "RecomposeFaceCorrectorLoader", "inputs": {"checkpoint": checkpoint}},
            "3": {"class_type": "RecomposeFaceUndistort",
                  "inputs": {"image": ["1", 0], "mode": mode, "far_distance_m": 3.0, "selfie_distance_m": 0.0,
                             "fov_degrees": 70.0, "face_index": -1, "on_no_face": "error", "falloff": 0.35,
                             "depth_is_disparity": True, "corrector": ["2", 0]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "recompose/learned"}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}}}


def test_learned_mode_runs_the_official_layout_checkpoint(comfy):
    entry = comfy.run(_prompt("learned", "00000196-checkpoint.pth.tar"), timeout=300)
    out = np.asarray(Image.open(comfy.output_files(entry, "4")[0]).convert("RGB"), dtype=np.float32)
    source = np.asarray(Image.open(comfy.base / "input" / "recompose_astronaut.jpg").convert("RGB"), dtype=np.float32)
    assert out.shape == source.shape
    assert np.abs(out[:40, :40] - source[:40, :40]).max() <= 1.0      # far from the face: untouched
    assert np.abs(out[100:250, 150:320] - source[100:250, 150:320]).mean() > 1.0  # the face was re-rendered


def test_learned_mode_without_a_corrector_says_what_to_do(comfy):
    with pytest.raises(WorkflowError, match="(?i)corrector"):
        comfy.run(_prompt("learned", "(none)"), timeout=120)

"""Fit Check loader and sampler in the real server: the dropdown lists only SVD folders (the
session's models folder also holds Paint-by-Example and SD folders), inputs of any size are
fitted to the asked size, and bad wiring is explained."""
import pytest
from PIL import Image

from scripts.harness.server import WorkflowError
from tests.fixtures import build_fitcheck


def _options(comfy, node, name):
    spec = comfy.object_info()[node]["input"]["required"][name]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def _sampler_prompt(**overrides) -> dict:
    sampler = {"fitcheck_pipe": ["2", 0], "front": ["3", 0], "back": ["4", 0], "poses": ["5", 0],
               "width": 64, "height": 72, "steps": 2, "cfg": 2.0, "tile_frames": 16, "overlap": 4, "seed": 0,
               "multi_reference": True, "decode_chunk": 8}
    sampler.update(overrides)
    return {"2": {"class_type": "RecomposeFitCheckLoader",
                  "inputs": {"svd_model": build_fitcheck.SVD_NAME, "weights": build_fitcheck.WEIGHTS_FILE}},
            "3": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},   # 512 x 512
            "4": {"class_type": "LoadImage", "inputs": {"image": "recompose_china.jpg"}},       # 640 x 427
            "5": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 90, "batch_size": 3, "color": 0}},
            "6": {"class_type": "RecomposeFitCheckSampler", "inputs": sampler},
            "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "recompose/fc_nodes"}},
            "8": {"class_type": "PreviewAny", "inputs": {"source": ["6", 1]}}}


def test_dropdowns_list_svd_folders_and_mimicmotion_files(comfy):
    assert _options(comfy, "RecomposeFitCheckLoader", "svd_model") == [build_fitcheck.SVD_NAME]
    assert build_fitcheck.WEIGHTS_FILE in _options(comfy, "RecomposeFitCheckLoader", "weights")


def test_sampler_fits_inputs_of_any_size(comfy):
    entry = comfy.run(_sampler_prompt(), timeout=180)
    frames = comfy.output_files(entry, "7")
    assert len(frames) == 3
    assert all(Image.open(f).size == (64, 72) for f in frames)


def test_half_wired_reference_poses_are_explained(comfy):
    prompt = _sampler_prompt(front_pose=["3", 0])
    with pytest.raises(WorkflowError, match="both front_pose and back_pose"):
        comfy.run(prompt, timeout=180)

"""Inverse Painting (learned path) in the real server: wrong files and settings reach the user as clear messages."""
import pytest

from scripts.harness.server import WorkflowError

BASE = "realisticVisionV51_v51VAE"
CLIP = "clip-vit-base-patch32"


def _paint_prompt(renderer_ckpt: str, settings_target: str = "2") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "recompose_china.jpg"}},
        "2": {"class_type": "RecomposePaintingRendererLoader",
              "inputs": {"checkpoint": renderer_ckpt, "base_model": BASE, "clip_model": CLIP}},
        "3": {"class_type": "RecomposeInversePaint",
              "inputs": {"target": ["1", 0], "painter": [settings_target, 0], "interval_s": 20.0, "max_updates": 1,
                         "short_side": 64}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


def test_mask_generator_file_in_the_renderer_loader_names_the_keys(comfy):
    with pytest.raises(WorkflowError, match="unet_state_dict") as err:
        comfy.run(_paint_prompt("RP/checkpoint-global_step-80000.ckpt"), timeout=300)
    assert "checkpoint-global_step-80000.ckpt" in str(err.value)


def test_renderer_file_in_the_mask_generator_loader_names_the_keys(comfy):
    prompt = {
        "1": {"class_type": "RecomposePaintingMaskGeneratorLoader",
              "inputs": {"checkpoint": "renderer/ckpt/checkpoint-global_step-200000.ckpt", "base_model": BASE}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    with pytest.raises(WorkflowError, match="RP_state_dict"):
        comfy.run(prompt, timeout=300)

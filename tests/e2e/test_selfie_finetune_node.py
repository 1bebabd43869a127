"""The Total Selfie fine-tune node in the real server: a few steps on the tiny selfie
pipeline, saved into models/recompose/selfie, and the fine-tuned copy used for inpainting;
bad inputs are explained."""
import pytest
from safetensors import safe_open

from scripts.harness.server import WorkflowError

SIZE = 64


def scaled(node_id, image, size=SIZE):
    return {node_id: {"class_type": "ImageScale", "inputs": {"image": image, "upscale_method": "bilinear",
                                                              "width": size, "height": size, "crop": "center"}}}


def load(node_id, name):
    return {node_id: {"class_type": "LoadImage", "inputs": {"image": name}}}


def finetune_prompt(save_as, with_mask=True, person=("21", 0)):
    prompt = {"1": {"class_type": "RecomposeSelfieInpaintLoader", "inputs": {"model": "pbe_selfie2full"}},
              **load("10", "recompose_china.jpg"), **scaled("11", ["10", 0]),
              **load("20", "recompose_grace_hopper.jpg"), **scaled("21", ["20", 0]),
              "30": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": SIZE, "height": SIZE}},
              "31": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 44}},
              "32": {"class_type": "MaskComposite", "inputs": {"destination": ["30", 0], "source": ["31", 0],
                                                               "x": 24, "y": 10, "operation": "add"}}}
    selfies = {}
    for i, (name, part) in enumerate(zip(("recompose_astronaut.jpg", "recompose_chelsea.jpg", "recompose_coffee.jpg",
                                          "recompose_astronaut.jpg"), ("face", "upper_body", "lower_body", "shoes"))):
        prompt.update(load(f"4{i}", name))
        prompt.update(scaled(f"5{i}", [f"4{i}", 0], 48))
        selfies[part] = [f"5{i}", 0]
    inputs = {"selfie_pipe": ["1", 0], "background": ["11", 0], "person": list(person), **selfies, "steps": 3,
              "learning_rate": 1e-3, "batch_size": 2, "augmentations": 6, "seed": 0, "lora_rank": 0,
              "save_as": save_as}
    if with_mask:
        inputs["person_mask"] = ["32", 0]
    prompt["60"] = {"class_type": "RecomposeSelfieFineTune", "inputs": inputs}
    prompt["61"] = {"class_type": "PreviewAny", "inputs": {"source": ["60", 1]}}
    prompt["70"] = {"class_type": "GrowMask", "inputs": {"mask": ["32", 0], "expand": 4, "tapered_corners": False}}
    prompt["71"] = {"class_type": "RecomposeSelfieInpaint",
                    "inputs": {"selfie_pipe": ["60", 0], "background": ["11", 0], "mask": ["70", 0], **selfies,
                               "steps": 2, "cfg": 1.0, "seed": 0, "scheduler": "default", "blend_s": 0.4,
                               "dilation": 4, "control_scale": 1.0, "control_start": 0.0, "control_end": 1.0}}
    prompt["72"] = {"class_type": "PreviewImage", "inputs": {"images": ["71", 0]}}
    return prompt


def test_finetune_node_saves_a_unet_file_and_the_tuned_pipe_inpaints(comfy):
    from types import SimpleNamespace

    import torch
    from diffusers import UNet2DConditionModel

    from pipelines.selfie_finetune import apply_finetuned_unet

    entry = comfy.run(finetune_prompt("selfie_e2e.safetensors"), timeout=600)
    assert entry["outputs"].get("72", {}).get("images"), "the tuned pipe did not inpaint"
    saved = comfy.base / "models" / "recompose" / "selfie" / "selfie_e2e.safetensors"
    with safe_open(str(saved), framework="pt") as f:
        meta = f.metadata()
    assert {k: meta.get(k) for k in ("format", "format_version", "kind", "lora_rank", "base", "steps", "lr",
                                     "batch_size", "augmentations", "seed", "mode")} == {
        "format": "recompose_selfie_finetune", "format_version": "1", "kind": "unet", "lora_rank": "0",
        "base": "pbe_selfie2full", "steps": "3", "lr": "0.001", "batch_size": "2",
        "augmentations": "6", "seed": "0", "mode": "trained"}
    # the file loads strictly into the base UNet and holds other weights than the base
    base = UNet2DConditionModel.from_pretrained(
        str(comfy.base / "models" / "diffusers" / "pbe_selfie2full" / "unet")).eval()
    tuned = apply_finetuned_unet(SimpleNamespace(unet=base), str(saved)).unet.state_dict()
    start = base.state_dict()
    assert tuned.keys() == start.keys()
    moved = [k for k in start if not torch.allclose(tuned[k].float(), start[k].half().float(), atol=1e-4)]
    assert len(moved) > len(start) // 2, f"only {len(moved)} of {len(start)} tensors changed"


def test_finetune_node_finds_the_person_of_a_composite_without_a_mask(comfy):
    prompt = finetune_prompt("selfie_composite.safetensors", with_mask=False, person=("80", 0))
    prompt["80"] = {"class_type": "ImageCompositeMasked",
                    "inputs": {"destination": ["11", 0], "source": ["21", 0], "x": 0, "y": 0, "resize_source": False,
                               "mask": ["32", 0]}}
    comfy.run(prompt, timeout=600)
    assert (comfy.base / "models" / "recompose" / "selfie" / "selfie_composite.safetensors").exists()


def test_finetune_node_explains_bad_input(comfy):
    # The person input is the background itself: nothing differs, so the node must say what to connect.
    with pytest.raises(WorkflowError, match="person mask"):
        comfy.run(finetune_prompt("selfie_nomask.safetensors", with_mask=False, person=("11", 0)), timeout=300)
    with pytest.raises(WorkflowError, match="plain file name"):
        comfy.run(finetune_prompt("../selfie_bad.safetensors"), timeout=300)


def test_a_saved_finetune_loads_back_and_inpaints_differently(comfy):
    comfy.run(finetune_prompt("selfie_reload.safetensors"), timeout=600)
    options = comfy.object_info()["RecomposeSelfieFineTuneLoader"]["input"]["required"]["finetune"][1]["options"]
    assert "selfie_reload.safetensors" in options  # listed without a restart
    prompt = finetune_prompt("unused.safetensors")
    del prompt["60"], prompt["61"]
    prompt["62"] = {"class_type": "RecomposeSelfieFineTuneLoader",
                    "inputs": {"selfie_pipe": ["1", 0], "finetune": "selfie_reload.safetensors"}}
    prompt["73"] = {"class_type": "RecomposeSelfieInpaint", "inputs": dict(prompt["71"]["inputs"], selfie_pipe=["1", 0])}
    prompt["71"]["inputs"]["selfie_pipe"] = ["62", 0]
    prompt["72"] = {"class_type": "SaveImage", "inputs": {"images": ["71", 0], "filename_prefix": "recompose/ft_tuned"}}
    prompt["74"] = {"class_type": "SaveImage", "inputs": {"images": ["73", 0], "filename_prefix": "recompose/ft_base"}}
    entry = comfy.run(prompt, timeout=600)
    import numpy as np
    from PIL import Image

    tuned, base = (np.asarray(Image.open(comfy.output_files(entry, n)[0]), dtype=np.float32) for n in ("72", "74"))
    assert np.abs(tuned - base).max() > 1.0  # the fine-tuned UNet changed the result

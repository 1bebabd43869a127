"""Every node input that becomes a path refuses to leave its folder, through /prompt: absolute paths,
'..', and links inside the folder that lead outside. The refusal names the input and never shows
file contents (ComfyUI 0.3.75 does not check V3 combo values, so the nodes must)."""
import pytest

from scripts.harness.server import WorkflowError

SECRET = "root:x:0:0:SECRET_IMU_HEADER"  # what a leaked /etc/passwd-like file would show

IMAGE = {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}}
TOKENIZER = {"class_type": "RecomposeAlignTokLoader", "inputs": {"tokenizer_name": "aligntok_f16d32.safetensors"}}
SELFIE_PIPE = {"class_type": "RecomposeSelfieInpaintLoader", "inputs": {"model": "pbe_selfie2full"}}


def _finetune_inputs():
    image = ["img", 0]
    return {"selfie_pipe": ["up", 0], "background": image, "person": image, "face": image, "upper_body": image,
            "lower_body": image, "shoes": image, "steps": 1, "learning_rate": 1e-3, "batch_size": 1,
            "augmentations": 1, "seed": 0, "lora_rank": 0, "save_as": "x.safetensors"}


# (node, input, valid inputs, upstream nodes, folder the input resolves in (under the base dir), file or dir,
#  suffix a link needs to pass the node's own name checks)
CASES = [
    ("RecomposeLoadIMU", "recording", {"recording": "recompose_imu_walk.csv", "fps": 30.0,
                                       "acceleration_unit": "auto", "angle_unit": "auto"}, {}, "input", "file", ".csv"),
    ("RecomposeMotionDatabase", "database", {"database": "built-in synthetic", "synthetic_clips": 6, "seed": 0,
                                             "size": 64}, {}, "models/recompose/motion", "dir", ""),
    ("RecomposeBuildMotionClip", "database", {"frames": ["img", 0], "fps": 10.0, "name": "clip", "database": "db",
                                              "body_height_m": 1.7}, {"img": IMAGE}, "models/recompose/motion", "dir",
     ""),
    ("RecomposePaintingRendererLoader", "checkpoint",
     {"checkpoint": "renderer/ckpt/checkpoint-global_step-200000.ckpt", "base_model": "realisticVisionV51_v51VAE",
      "clip_model": "clip-vit-base-patch32"}, {}, "models/recompose/painting", "file", ".ckpt"),
    ("RecomposePaintingRendererLoader", "base_model",
     {"checkpoint": "renderer/ckpt/checkpoint-global_step-200000.ckpt", "base_model": "realisticVisionV51_v51VAE",
      "clip_model": "clip-vit-base-patch32"}, {}, "models/diffusers", "dir", ""),
    ("RecomposePaintingRendererLoader", "clip_model",
     {"checkpoint": "renderer/ckpt/checkpoint-global_step-200000.ckpt", "base_model": "realisticVisionV51_v51VAE",
      "clip_model": "clip-vit-base-patch32"}, {}, "models/clip_vision", "dir", ""),
    ("RecomposePaintingMaskGeneratorLoader", "base_model",
     {"checkpoint": "RP/checkpoint-global_step-80000.ckpt", "base_model": "realisticVisionV51_v51VAE"}, {},
     "models/diffusers", "dir", ""),
    ("RecomposePaintingMaskGeneratorLoader", "checkpoint",
     {"checkpoint": "RP/checkpoint-global_step-80000.ckpt", "base_model": "realisticVisionV51_v51VAE"}, {},
     "models/recompose/painting", "file", ".ckpt"),
    ("RecomposePaintingMetrics", "reference_folder", {"keyframes": ["img", 0], "interval_s": 20.0,
                                                      "reference_folder": "painting_reference"}, {"img": IMAGE},
     "input", "dir", ""),
    ("RecomposeAlignTokLoader", "tokenizer_name", {"tokenizer_name": "aligntok_f16d32.safetensors"}, {},
     "models/recompose/aligntok", "file", ".safetensors"),
    ("RecomposeAlignTokTrain", "image_folder", {"tokenizer": ["up", 0], "image_folder": "aligntok_train", "stage": 1,
                                                "steps": 1, "batch_size": 1, "size": 32, "lr_stage1": 1e-3, "lr_stage2": 1e-5, "lr_stage3": 1e-4, "gan_start_stage1": 1, "gan_start_stages_2_3": 0,
                                                "save_as": "x.safetensors"}, {"up": TOKENIZER}, "input", "dir", ""),
    ("RecomposeAlignTokTrain", "save_as", {"tokenizer": ["up", 0], "image_folder": "aligntok_train", "stage": 1,
                                           "steps": 1, "batch_size": 1, "size": 32, "lr_stage1": 1e-3, "lr_stage2": 1e-5, "lr_stage3": 1e-4, "gan_start_stage1": 1, "gan_start_stages_2_3": 0,
                                           "save_as": "x.safetensors"}, {"up": TOKENIZER},
     "models/recompose/aligntok", "file", ".safetensors"),
    ("RecomposeSelfieFineTune", "save_as", _finetune_inputs(), {"up": SELFIE_PIPE, "img": IMAGE},
     "models/recompose/selfie", "file", ".safetensors"),
    ("RecomposeSelfieFineTuneLoader", "finetune", {"selfie_pipe": ["up", 0], "finetune": "x.safetensors"},
     {"up": SELFIE_PIPE}, "models/recompose/selfie", "file", ".safetensors"),
    ("RecomposeVLMInstructions", "model", {"model": "x", "max_words": 2}, {}, "models/LLM", "dir", ""),
    ("RecomposeSelfieInpaintLoader", "model", {"model": "pbe_selfie2full"}, {}, "models/diffusers",
     "dir", ""),
    ("RecomposeSelfieControlNetLoader", "controlnet", {"controlnet": "control_v11p_sd15_canny"}, {},
     "models/controlnet", "file", ".pth"),
    ("RecomposeSelfieControlNetLoader", "controlnet", {"controlnet": "control_v11p_sd15_canny"}, {},
     "models/controlnet", "dir", ""),
    ("RecomposeFitCheckLoader", "svd_model", {"svd_model": "stable-video-diffusion-img2vid-xt-1-1", "weights": "MimicMotion_1-1.pth"},
     {}, "models/diffusers", "dir", ""),
    ("RecomposeFitCheckLoader", "weights", {"svd_model": "stable-video-diffusion-img2vid-xt-1-1", "weights": "MimicMotion_1-1.pth"},
     {}, "models/recompose/fitcheck", "file", ".pth"),
    ("RecomposeFaceCorrectorLoader", "checkpoint", {"checkpoint": "00000196-checkpoint.pth.tar"}, {},
     "models/recompose/face", "file", ".tar"),
]


@pytest.fixture(scope="module")
def outside(comfy):
    """A folder beside input/ and models/ holding a secret CSV and a complete-looking model folder."""
    root = comfy.base / "outside"
    (root / "model").mkdir(parents=True, exist_ok=True)
    secret = root / "secret.csv"
    secret.write_text(SECRET + "\n1,2,3\n")
    for marker in ("model_index.json", "config.json"):
        (root / "model" / marker).write_text("{}")
    return root


def _prompt(node, inputs, upstream):
    prompt = {k: dict(v) for k, v in upstream.items()}
    prompt["node"] = {"class_type": node, "inputs": inputs}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["node", 0]}}
    return prompt


def _refusal(comfy, prompt) -> str:
    try:
        comfy.run(prompt, timeout=180)
    except WorkflowError as e:
        return e.message
    except RuntimeError as e:  # refused by ComfyUI's own validation before running
        return str(e)
    pytest.fail("the prompt ran instead of being refused")


def _attempts(outside, kind, folder, suffix, link_name):
    target = outside / ("secret.csv" if kind == "file" else "model")
    return {"absolute system file": "/etc/passwd", "dot-dot to a system file": "../../etc/passwd",
            "dot-dot": "..", f"absolute {kind} outside the folder": str(target),
            "dot-dot to the outside": f"../{'../' * folder.count('/')}outside/{target.name}",
            "link leading outside": link_name}


@pytest.mark.parametrize("node,input_name,inputs,upstream,folder,kind,suffix", CASES,
                         ids=[f"{c[0]}.{c[1]}.{c[5]}" for c in CASES])
def test_path_inputs_refuse_to_leave_their_folder(comfy, outside, node, input_name, inputs, upstream, folder, kind,
                                                  suffix):
    link = comfy.base / folder / f"recompose_escape_{kind}{suffix}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(outside / ("secret.csv" if kind == "file" else "model"), target_is_directory=kind == "dir")
    try:
        for label, value in _attempts(outside, kind, folder, suffix, link.name).items():
            message = _refusal(comfy, _prompt(node, {**inputs, input_name: value}, upstream))
            assert input_name in message, f"{label}: the refusal does not name '{input_name}': {message}"
            assert "folder" in message, f"{label}: the refusal does not name the folder: {message}"
            assert "root:" not in message and "SECRET" not in message, f"{label}: file contents leaked: {message}"
    finally:
        link.unlink()

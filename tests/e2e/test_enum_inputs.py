"""Every enum-like dropdown of every Recompose node refuses a value that is not one of its options,
through /prompt, with a message naming the input and the allowed values (ComfyUI 0.3.75 does not
check V3 combo values itself). Dropdowns of files and folders are covered by test_path_safety."""

from scripts.harness.server import WorkflowError
from tests.e2e.test_path_safety import CASES

# file dropdowns resolved through resolve_file (names outside their folder are refused there); a
# bogus name gets the missing-file message naming the file, its source and folder
FILE_INPUTS = {("RecomposeCLIPVisionLoader", "clip_name"), ("RecomposePairPrompts", "identity_embedding"),
               ("RecomposePortraitMCDMLoader", "unet"), ("RecomposePortraitMCDMLoader", "adapter")}
PATH_INPUTS = {(c[0], c[1]) for c in CASES} | FILE_INPUTS
BOGUS = "no-such-option"
# producers for custom socket types a node needs before it can check its own inputs
PRODUCERS = {"RECOMPOSE_SELFIE_PIPE": {"class_type": "RecomposeSelfieInpaintLoader",
                                       "inputs": {"model": "pbe_selfie2full"}}}
OUTPUT_SLOT = {"CLIP": 1, "VAE": 2}  # CheckpointLoaderSimple's outputs: MODEL, CLIP, VAE
CHECKPOINT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}}
BUILT_IN = {"IMAGE": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},
            "MASK": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
            "MODEL": CHECKPOINT, "CLIP": CHECKPOINT, "VAE": CHECKPOINT,
            "CONDITIONING": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
            "LATENT": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}


def _options(spec):
    """The options of a combo input spec (V1 style: [[...], {...}]; V3 style: ["COMBO", {"options": [...]}])."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return spec[1].get("options", [])
    return None


def enum_inputs(object_info):
    found = []
    for node, info in sorted(object_info.items()):
        if not node.startswith("Recompose"):
            continue
        for group in ("required", "optional"):
            for name, spec in info["input"].get(group, {}).items():
                if _options(spec) is not None and (node, name) not in PATH_INPUTS:
                    found.append((node, name))
    return found


def _value(spec):
    options = _options(spec)
    if options is not None:
        return options[0]
    return spec[1].get("default") if len(spec) > 1 else None


def _prompt(info, node, name):
    prompt, inputs = {"ckpt": CHECKPOINT}, {}  # the text encoder that CONDITIONING producers use
    for key, spec in info["input"]["required"].items():
        kind = spec[0]
        if isinstance(kind, str) and (kind in BUILT_IN or kind in PRODUCERS):
            prompt[f"up_{key}"] = dict(BUILT_IN.get(kind) or PRODUCERS[kind])
            inputs[key] = [f"up_{key}", OUTPUT_SLOT.get(kind, 0)]
        else:
            value = _value(spec)
            assert value is not None or kind in ("STRING",), f"{node}.{key}: no producer for type {kind}; add one"
            inputs[key] = value if value is not None else ""
    inputs[name] = BOGUS
    prompt["node"] = {"class_type": node, "inputs": inputs}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["node", 0]}}
    return prompt


def test_the_pack_has_enum_inputs(object_info):
    # the ones the issue names must be found, or discovery is broken
    assert {("RecomposeFaceUndistort", "on_no_face"), ("RecomposeLoadIMU", "acceleration_unit"),
            ("RecomposeSelfieInpaint", "scheduler")} <= set(enum_inputs(object_info))


def test_every_enum_input_refuses_unknown_values(comfy, object_info):
    failures = []
    for node, name in enum_inputs(object_info):
        info = object_info[node]
        spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}[name]
        try:
            comfy.run(_prompt(info, node, name), timeout=180)
            failures.append(f"{node}.{name}: '{BOGUS}' was accepted")
            continue
        except WorkflowError as e:
            message = e.message
        missing = [o for o in _options(spec) if repr(o) not in message]
        if name not in message or BOGUS not in message or missing:
            failures.append(f"{node}.{name}: unclear refusal (missing {missing}): {message}")
    assert not failures, "\n".join(failures)

"""The pack's nodes called in this process, as ComfyUI calls them (inference mode, CPU settings), for
checks too fine-grained for the server: fuzzing execute, hashing inputs before and after a call."""
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from scripts.harness.server import COMFY_DIR, REPO

PACK = "recompose_pack"
CORE_FOLDERS = ("diffusers", "controlnet", "clip_vision", "vae", "checkpoints")


def import_pack():
    """The pack imported as ComfyUI imports a custom node (package ``recompose_pack``), with ComfyUI's
    --cpu settings and the pack's model folders registered."""
    if str(COMFY_DIR) not in sys.path:
        sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; model_management reads it on import
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = pack
        spec.loader.exec_module(pack)
        importlib.import_module(f"{PACK}.nodes").register_model_folders()
    return sys.modules[PACK]


def use_base(base: Path) -> None:
    """Points ComfyUI's input folder and the model folders the pack reads at ``base``/input and
    ``base``/models (as --base-directory does for the server), ahead of those registered before."""
    import folder_paths

    folders = importlib.import_module(f"{PACK}.nodes._folders").PACK_FOLDERS
    base = Path(base)
    folder_paths.set_input_directory(str(base / "input"))
    for name, sub in {**{n: n for n in CORE_FOLDERS}, **folders}.items():
        folder_paths.add_model_folder_path(name, str(base / "models" / sub), is_default=True)
    folder_paths.filename_list_cache.clear()


def node_classes() -> dict:
    """node id -> class, for every family the pack loads."""
    nodes = importlib.import_module(f"{PACK}.nodes")
    found = {}
    for family in nodes.FAMILIES:
        for cls in importlib.import_module(f"{PACK}.nodes.{family}").NODES:
            found[cls.define_schema().node_id] = cls
    return found


def run_node(cls, **inputs) -> tuple:
    """``cls.execute(**inputs)`` in inference mode, as ComfyUI runs it; its outputs as a tuple."""
    import torch

    with torch.inference_mode():
        out = cls.execute(**inputs)
    return tuple(out.args)


def fingerprint(value) -> str:
    """A digest of every tensor / array / number / string inside ``value`` (dicts, lists, dataclasses and
    plain objects' public attributes followed; modules by their state dict), to tell whether it changed."""
    h = hashlib.sha256()
    _feed(h, value, {})
    return h.hexdigest()


def _feed(h, value, seen: dict):
    """``seen`` maps id -> object, holding each visited object so its id cannot be reused meanwhile."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        h.update(f"T{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.shape}{value.dtype}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (str, int, float, bool, bytes, type(None))):
        h.update(repr(value).encode())
    elif isinstance(value, torch.nn.Module):
        _feed(h, value.state_dict(), seen)
    elif _is_tokenizer(value):  # text tokenizers memoise what they have split: not state a node owns
        h.update(type(value).__name__.encode())
    elif id(value) in seen:
        return
    elif isinstance(value, dict):
        seen[id(value)] = value
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _feed(h, value[k], seen)
    elif isinstance(value, (list, tuple)):
        seen[id(value)] = value
        for v in value:
            _feed(h, v, seen)
    elif hasattr(value, "__dict__"):  # private ('_') attributes are memo caches, not compared (reruns are)
        seen[id(value)] = value
        h.update(type(value).__name__.encode())
        _feed(h, {k: v for k, v in vars(value).items() if not k.startswith("_")}, seen)
    else:
        h.update(repr(type(value)).encode())


def defaults(cls) -> dict:
    """The schema defaults of a node's widget inputs (a combo's first option when it has no default)."""
    found = {}
    for spec in cls.define_schema().inputs:
        default = getattr(spec, "default", None)
        if default is None and getattr(spec, "options", None):
            default = spec.options[0]
        if default is not None:
            found[spec.id] = default
    return found


def load_image(base: Path, name: str, size: int):
    """An input image as ComfyUI's LoadImage gives it: IMAGE [1, size, size, 3] float in 0..1."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(Path(base) / "input" / name) as img:
        pixels = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)[None]


def cheap_graph(base: Path) -> list:
    """(step name, node id, inputs) for every node that runs in seconds on CPU with the tiny fixtures;
    an input ("step", i) is output i of an earlier step. Widget inputs not given take their defaults."""
    import torch

    face, person, scene = (load_image(base, n, 128) for n in ("recompose_grace_hopper.jpg",
                                                               "recompose_astronaut.jpg", "recompose_china.jpg"))
    small = load_image(base, "recompose_coffee.jpg", 64)
    mask = torch.zeros(1, 128, 128)
    mask[:, 32:96, 40:88] = 1.0
    small_mask = torch.zeros(1, 64, 64)
    small_mask[:, 16:48, 24:40] = 1.0
    floor = torch.zeros(2, 64, 64)
    floor[:, 40:] = 1.0
    depth = torch.linspace(0, 1, 64)[None, :, None, None].expand(2, 64, 64, 3).contiguous()
    return [
        ("landmarks", "RecomposeFaceLandmarks", {"image": face}),
        ("undistort", "RecomposeFaceUndistort", {"image": face, "on_no_face": "pass_through"}),
        ("flow", "RecomposeApplyFaceFlow", {"flow": ("undistort", 1), "image": face, "mask": mask}),
        ("align", "RecomposeFaceAlignCrop", {"image": face, "size": 64}),
        ("region", "RecomposeRegionCrop", {"image": person, "region": "mask", "width": 32, "height": 32,
                                           "mask": mask}),
        ("paste", "RecomposePasteCrop", {"image": person, "refined": ("region", 0), "crop_geometry": ("region", 1)}),
        ("pose", "RecomposePersonPose", {"image": person}),
        ("box", "RecomposeMaskBox", {"mask": mask}),
        ("prepend", "RecomposePrependReferences", {"frames": torch.cat([scene, scene]), "front": face,
                                                   "back": person}),
        ("drop", "RecomposeDropReferences", {"frames": ("prepend", 0)}),
        ("db", "RecomposeMotionDatabase", {"synthetic_clips": 8, "size": 64}),
        ("imu", "RecomposeLoadIMU", {"recording": "recompose_imu_walk.csv"}),
        ("retrieve", "RecomposeRetrieveMotion", {"motion_db": ("db", 0), "motion": ("imu", 0), "max_frames": 4}),
        ("place", "RecomposePlacePoses", {"poses": ("retrieve", 0), "floor": floor[:1]}),
        ("backgrounds", "RecomposeRankBackgrounds", {"backgrounds": torch.cat([small, small.flip(2)]),
                                                     "depths": depth, "floors": floor, "reference_depth": depth[:1],
                                                     "reference_floor": floor[:1]}),
        ("difference", "RecomposeDifferenceMask", {"target": small, "canvas": small.flip(1)}),
        ("heuristic", "RecomposeHeuristicInstructions", {}),
        ("user", "RecomposeUserInstructions", {}),
        ("painter", "RecomposeBaselinePainter", {}),
        ("masker", "RecomposeBaselineMaskGenerator", {}),
        ("paint", "RecomposeInversePaint", {"target": small, "painter": ("painter", 0), "mask_generator": ("masker", 0),
                                            "instructions": ("heuristic", 0), "max_updates": 3, "short_side": 64}),
        ("renderer", "RecomposePaintingRendererLoader", {
            "checkpoint": "renderer/ckpt/checkpoint-global_step-200000.ckpt",
            "base_model": "realisticVisionV51_v51VAE", "clip_model": "clip-vit-base-patch32"}),
        ("renderer_settings", "RecomposePaintingRendererSettings", {"painter": ("renderer", 0), "steps": 2}),
        ("rp", "RecomposePaintingMaskGeneratorLoader", {"checkpoint": "RP/checkpoint-global_step-80000.ckpt",
                                                        "base_model": "realisticVisionV51_v51VAE"}),
        ("paint_learned", "RecomposeInversePaint", {"target": small, "painter": ("renderer_settings", 0),
                                                    "mask_generator": ("rp", 0), "instructions": ("user", 0),
                                                    "max_updates": 2, "short_side": 64}),
        ("tokenizer", "RecomposeAlignTokLoader", {"tokenizer_name": "aligntok_f16d32.safetensors"}),
        ("encode", "RecomposeAlignTokEncode", {"tokenizer": ("tokenizer", 0), "image": small}),
        ("decode", "RecomposeAlignTokDecode", {"tokenizer": ("tokenizer", 0), "latent": ("encode", 0)}),
        ("selfie_pipe", "RecomposeSelfieInpaintLoader", {"model": "pbe_selfie2full"}),
        ("inpaint", "RecomposeSelfieInpaint", {"selfie_pipe": ("selfie_pipe", 0), "background": small,
                                               "mask": small_mask, "face": small, "upper_body": small,
                                               "lower_body": small, "shoes": small, "steps": 2, "dilation": 2}),
    ]


def step_inputs(cls, given: dict, results: dict) -> dict:
    """A step's inputs: the node's defaults, then the given values with ("step", i) references resolved."""
    return {**defaults(cls), **{k: results[v[0]][v[1]] if isinstance(v, tuple) else v for k, v in given.items()}}


def run_graph(graph: list, classes: dict) -> dict:
    """Runs ``graph`` (see cheap_graph) in order; step name -> outputs."""
    results = {}
    for name, node_id, given in graph:
        results[name] = run_node(classes[node_id], **step_inputs(classes[node_id], given, results))
    return results


def _is_tokenizer(value) -> bool:
    base = getattr(sys.modules.get("transformers"), "PreTrainedTokenizerBase", None)
    return base is not None and isinstance(value, base)

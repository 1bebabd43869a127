"""Paired-data generation as a CLI (thesis 5.2.2, settings 5.5.1): N side-by-side canvases [x_A | x_B] from an
SD1.5 diffusers folder, each denoised once under eq. 5.2, written in the official dataset layout that the MCDM
trainer (``python -m pipelines.portrait_edit.train --data OUT``) reads:

    OUT/train/condition/<i>.png   x_A, the left half (source prompt p_a = 'a [X], [Y]')
    OUT/train/gt/<i>.png          x_B, the right half (target prompt p_b = 'a [X], [Z]')
    OUT/train/prompt.json         one JSON object a line: {"source": "condition/<i>.png", "target": "gt/<i>.png",
                                  "prompt": p_b, "source_prompt": p_a, "seed": seed of the pair}

Pair i uses seed SEED + i for its [X]/[Y]/[Z] (and pose) draw and for its noise, so a stopped run resumes where it
stopped: pairs already in prompt.json with both images are skipped, and prompt.json is replaced atomically after
every pair. The thesis samples with Stochastic Karras VE; here Euler steps on Karras sigmas stand in, stochastic
with ``--churn`` (Karras et al.'s S_churn). Identity tokens c_id are not offered here (the thesis' FFHQ identity
encoder is not released); the 'Pair Prompts' node takes a textual-inversion file for them.

    python -m pipelines.portrait_edit.make_pairs --base SD15_DIFFUSERS_DIR --out DATA --count 1000 \\
        [--prompts lists.json | --subjects man woman --sources "normal costume" --targets "Santa Claus costume"] \\
        [--controlnet OPENPOSE_DIFFUSERS_DIR --poses POSE_IMAGE_DIR]
"""
import argparse
import json
import os
import random
from dataclasses import dataclass

import torch

from ..common.errors import InputError
from ..common.progress import Progress, no_progress
from . import pairs
from .train import prompt_file, read_records

SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
LIST_KEYS = ("subjects", "sources", "targets")
DEFAULT_LISTS = {"subjects": ["man", "woman"], "sources": [pairs.COSTUME_SOURCE],
                 "targets": list(pairs.COSTUME_TARGETS)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PAIR_SIDE = 512  # H = W = 512 in the thesis
PAIR_STEPS = 20  # T = 20


@dataclass
class SamplingSettings:
    size: int = PAIR_SIDE
    steps: int = PAIR_STEPS
    cfg: float = pairs.GUIDANCE_SCALE
    side_scales: tuple = (pairs.SHARED_SCALE, pairs.SIDE_SCALE, pairs.SIDE_SCALE)  # s'_d, s'_a, s'_b
    churn: float = 0.0
    negative: str = ""
    control_scale: float = 1.0  # ControlNet scale (thesis 3.5: 1.0)


@dataclass
class PairSpec:
    """What pair ``index`` is: its seed, its [X]/[Y]/[Z] and (with poses) which pose image."""
    index: int
    seed: int
    subject: str
    source: str
    target: str
    pose: int = None

    @property
    def prompts(self) -> tuple:
        """(p, p_a, p_b) of 5.5.1."""
        return pairs.pair_prompts(self.subject, self.source, self.target)

    def record(self) -> dict:
        _, p_a, p_b = self.prompts
        return {"source": f"condition/{self.index}.png", "target": f"gt/{self.index}.png", "prompt": p_b,
                "source_prompt": p_a, "seed": self.seed}


def plan_pair(index: int, seed: int, lists: dict, pose_count: int = 0) -> PairSpec:
    rng = random.Random(seed + index)
    picks = [rng.choice(lists[key]) for key in LIST_KEYS]
    return PairSpec(index, seed + index, *picks, pose=rng.randrange(pose_count) if pose_count else None)


def prompt_lists(path: str = None, **given) -> dict:
    """[X]/[Y]/[Z] lists: the costume lists of 5.5.1, overridden by a JSON file {"subjects": [...], "sources": [...],
    "targets": [...]} (any of the keys) and then by the lists given on the command line."""
    lists = dict(DEFAULT_LISTS)
    if path:
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        unknown = sorted(set(loaded) - set(LIST_KEYS)) if isinstance(loaded, dict) else ["(not an object)"]
        if unknown:
            raise InputError(f"{path}: expected a JSON object with keys {', '.join(LIST_KEYS)}; got {unknown}.")
        lists.update(loaded)
    lists.update({k: v for k, v in given.items() if v})
    for key in LIST_KEYS:
        values = lists[key]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise InputError(f"The [X]/[Y]/[Z] list '{key}' must be a non-empty list of non-empty strings.")
    return lists


class PairSampler:
    """Denoises one canvas [x_A | x_B] with eq. 5.2: the negative, shared, source and target prompts in one batch
    through the UNet (and the ControlNet, fed [pose | pose]), combined by ``pairs.guided_pair_prediction``."""

    def __init__(self, unet, vae, text, scheduler, controlnet=None):
        self.unet, self.vae, self.text, self.scheduler, self.controlnet = unet, vae, text, scheduler, controlnet
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def __call__(self, prompts, seed: int, settings: SamplingSettings, pose=None):
        """(x_A, x_B) as PIL images of settings.size squared; ``pose``: a PIL pose image (needs the ControlNet)."""
        from ..common.images import image_to_pils, to_unsigned

        if settings.size % self.scale:
            raise InputError(f"The pair side ({settings.size}) must be a multiple of {self.scale} (the VAE's scale).")
        device, dtype = self.unet.device, self.unet.dtype
        side = settings.size // self.scale
        noise = torch.randn((1, 4, side, 2 * side), generator=torch.Generator().manual_seed(seed))
        step_noise = torch.Generator().manual_seed(seed + 1)
        self.scheduler.set_timesteps(settings.steps, device=device)
        latents = noise.to(device, torch.float32) * self.scheduler.init_noise_sigma
        hidden = self.text([settings.negative, *prompts]).to(device, dtype)
        control = self._pose_canvas(pose, settings.size, device, dtype)
        for t in self.scheduler.timesteps:
            x = self.scheduler.scale_model_input(latents, t).to(dtype).repeat(4, 1, 1, 1)
            residuals = self._residuals(x, t, hidden, control, settings.control_scale)
            predictions = self.unet(x, t, encoder_hidden_states=hidden, **residuals).sample.float().chunk(4)
            eps = pairs.guided_pair_prediction(*predictions, settings.cfg, *settings.side_scales)
            latents = self.scheduler.step(eps, t, latents, s_churn=settings.churn, generator=step_noise).prev_sample
        canvas = self.vae.decode((latents / self.vae.config.scaling_factor).to(dtype)).sample
        left, right = pairs.split_canvas(to_unsigned(canvas.float()).permute(0, 2, 3, 1).cpu())
        return image_to_pils(left)[0], image_to_pils(right)[0]

    def _pose_canvas(self, pose, size, device, dtype):
        if pose is None:
            return None
        if self.controlnet is None:
            raise InputError("A pose image was given without an OpenPose ControlNet (--controlnet).")
        from ..common.images import pil_to_image

        half = pil_to_image(pose.convert("RGB").resize((size, size))).permute(0, 3, 1, 2)
        return torch.cat([half, half], dim=-1).repeat(4, 1, 1, 1).to(device, dtype)  # 0..1, as ControlNets take

    def _residuals(self, x, t, hidden, control, scale) -> dict:
        if control is None:
            return {}
        down, mid = self.controlnet(x, t, encoder_hidden_states=hidden, controlnet_cond=control,
                                    conditioning_scale=scale, return_dict=False)
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


def load_sampler(base_dir: str, device, dtype=torch.float32, controlnet_dir: str = None) -> PairSampler:
    """A PairSampler over an SD1.5 diffusers folder (and optionally a diffusers OpenPose ControlNet folder)."""
    from diffusers import ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel

    from .base import load_text_encoder, load_vae

    missing = [s for s in SUBFOLDERS if not os.path.isdir(os.path.join(base_dir, s))]
    if missing:
        raise InputError(f"{base_dir} is not an SD1.5 diffusers folder: it lacks {', '.join(missing)}/.")
    if controlnet_dir and not os.path.isfile(os.path.join(controlnet_dir, "config.json")):
        raise InputError(f"{controlnet_dir} is not a diffusers ControlNet folder (no config.json), e.g. "
                         "lllyasviel/control_v11p_sd15_openpose.")
    unet = UNet2DConditionModel.from_pretrained(base_dir, subfolder="unet", torch_dtype=dtype).to(device).eval()
    controlnet = (ControlNetModel.from_pretrained(controlnet_dir, torch_dtype=dtype).to(device).eval()
                  if controlnet_dir else None)
    scheduler = EulerDiscreteScheduler.from_pretrained(base_dir, subfolder="scheduler", use_karras_sigmas=True)
    return PairSampler(unet, load_vae(base_dir, device, dtype), load_text_encoder(base_dir, device, dtype),
                       scheduler, controlnet)


def pose_files(folder: str) -> list:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES)) if os.path.isdir(folder) \
        else []
    if not names:
        raise InputError(f"No pose images ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    return [os.path.join(folder, n) for n in names]


def write_records(out_dir: str, records: list) -> None:
    """prompt.json replaced in one step (written beside it, then renamed), so it is never half written."""
    path = prompt_file(out_dir)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(path + ".tmp", path)


def check_dataset_folder(out_dir: str) -> None:
    """Refuses a file, and a non-empty folder without train/prompt.json (not a pair dataset)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir} is a file; give a folder for the pairs.")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(prompt_file(out_dir)):
        raise InputError(f"{out_dir} is not empty and holds no train/prompt.json, so it is not a pair dataset: "
                         "refusing to write into it. Give a new or empty folder, or one this tool wrote.")


def open_dataset(out_dir: str) -> list:
    """The records of a dataset folder this tool can write to (created when new or empty); refuses other folders."""
    check_dataset_folder(out_dir)
    for sub in ("condition", "gt"):
        os.makedirs(os.path.join(out_dir, "train", sub), exist_ok=True)
    if not os.path.isfile(prompt_file(out_dir)):
        write_records(out_dir, [])
    return read_records(out_dir)


def _is_written(out_dir: str, spec: PairSpec, records: dict) -> bool:
    """True when pair ``spec`` is in prompt.json with both images; an entry made with other lists or seed stops."""
    expected = spec.record()
    record = records.get(expected["source"])
    if record is None:
        return False
    changed = [k for k in ("target", "prompt", "source_prompt", "seed") if record.get(k) != expected[k]]
    if changed:
        raise InputError(f"{prompt_file(out_dir)}: pair {spec.index} was written with another {', '.join(changed)} "
                         f"({record}); resume with the same --seed and lists, or use a new folder.")
    return all(os.path.isfile(os.path.join(out_dir, "train", expected[k])) for k in ("source", "target"))


def _save_atomic(image, path: str) -> None:
    image.save(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def _read_image(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def make_pairs(sample, out_dir: str, count: int, lists: dict, seed: int = 0, poses: list = None,
               progress: Progress = None) -> list:
    """Writes pairs 0..count-1 that are not written yet; ``sample(prompts, seed, pose)`` -> (x_A, x_B) PIL images.
    Pairs already written count as done steps of ``progress`` (total ``count``). Returns the indices generated in
    this run."""
    if count < 1:
        raise InputError(f"The pair count must be at least 1, got {count}.")
    records = {r["source"]: r for r in open_dataset(out_dir)}
    specs = [plan_pair(i, seed, lists, len(poses or [])) for i in range(count)]
    todo = [s for s in specs if not _is_written(out_dir, s, records)]
    progress = progress or no_progress(count)
    if len(todo) < count:
        progress.step(count - len(todo))
    for spec in todo:
        pose = _read_image(poses[spec.pose]) if poses else None
        x_a, x_b = sample(spec.prompts, spec.seed, pose)
        record = spec.record()
        for key, image in (("source", x_a), ("target", x_b)):
            _save_atomic(image, os.path.join(out_dir, "train", record[key]))
        records[record["source"]] = record
        write_records(out_dir, list(records.values()))
        progress.step()
    return [s.index for s in todo]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write paired data for MCDM (thesis eq. 5.2) in the official "
                                                 "dataset layout (train/condition, train/gt, train/prompt.json).")
    parser.add_argument("--base", required=True, help="SD1.5 diffusers folder (RealisticVision in the thesis)")
    parser.add_argument("--out", required=True, help="dataset folder: new, empty, or written by this tool (resumes)")
    parser.add_argument("--count", type=int, required=True, help="number of pairs N (pairs 0..N-1)")
    parser.add_argument("--seed", type=int, default=0, help="pair i uses seed SEED + i")
    parser.add_argument("--prompts", help='JSON {"subjects": [...], "sources": [...], "targets": [...]}')
    parser.add_argument("--subjects", nargs="+", help="[X] choices (default: man woman)")
    parser.add_argument("--sources", nargs="+", help=f"[Y] choices (default: '{pairs.COSTUME_SOURCE}')")
    parser.add_argument("--targets", nargs="+", help="[Z] choices (default: the thesis' four costumes)")
    parser.add_argument("--size", type=int, default=PAIR_SIDE, help="side of each image (canvas size x 2size)")
    parser.add_argument("--steps", type=int, default=PAIR_STEPS)
    parser.add_argument("--cfg", type=float, default=pairs.GUIDANCE_SCALE, help="CFG of each prediction")
    parser.add_argument("--side-scales", type=float, nargs=3, default=[pairs.SHARED_SCALE, pairs.SIDE_SCALE,
                                                                       pairs.SIDE_SCALE], help="s'_d s'_a s'_b")
    parser.add_argument("--churn", type=float, default=0.0, help="Karras S_churn (0: deterministic Euler)")
    parser.add_argument("--negative", default="", help="negative prompt of every CFG")
    parser.add_argument("--controlnet", help="diffusers OpenPose ControlNet folder (control_v11p_sd15_openpose)")
    parser.add_argument("--poses", help="folder of OpenPose images; each pair draws one (needs --controlnet)")
    parser.add_argument("--control-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if bool(args.controlnet) != bool(args.poses):
        parser.error("--controlnet and --poses go together")
    from tqdm import tqdm

    lists = prompt_lists(args.prompts, subjects=args.subjects, sources=args.sources, targets=args.targets)
    check_dataset_folder(args.out)  # before minutes of model loading
    poses = pose_files(args.poses) if args.poses else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sampler = load_sampler(args.base, device, torch.float16 if device == "cuda" else torch.float32, args.controlnet)
    settings = SamplingSettings(args.size, args.steps, args.cfg, tuple(args.side_scales), args.churn, args.negative,
                                args.control_scale)
    with tqdm(total=args.count, desc="pairs", unit="pair") as bar:
        def report(done, _total, _preview):
            bar.update(done - bar.n)

        made = make_pairs(lambda prompts, seed, pose: sampler(prompts, seed, settings, pose), args.out, args.count,
                          lists, args.seed, poses, Progress(args.count, report))
    print(f"{len(made)} new pairs in {args.out} ({args.count} asked)", flush=True)


if __name__ == "__main__":
    main()

"""Peak load RAM of the Inverse Painting renderer: ``load_renderer`` (streams: mapped file, UNets built on the
meta device taking their sub-dict's tensors, each sub-dict dropped once used) against the load it replaced
(the whole checkpoint read into memory, two randomly initialised float32 UNets, weights copied in).

The checkpoint is a full-size stand-in in the official layout, written once to ``--dir`` (/tmp): unet_state_dict
and referencenet_state_dict (pruned as the official one) of SD1.5 shape in float16, plus the canvas encoder,
next-CLIP predictor and time encoder at their official sizes (random values: only sizes and layout matter here;
about 3.4 GB). The base folder has SD1.5's unet/config.json; its VAE, text encoder and CLIP are the tiny test
ones (they are loaded the same way by both sides and are not what this measures).

Each load runs in a fresh subprocess, followed by one read of every weight (what moving to a GPU or the first
forward does; a mapped file is paged in only then); its peak is the high-water mark of the process RSS (VmHWM,
which counts the mapped file pages it read) minus its RSS after imports, and separately the peak of anonymous memory
(RssAnon, sampled every 2 ms: what a mapped file does not cost). ``--dtype float16`` keeps the modules in the
file's precision, as a GPU placement does before moving them; float32 is the CPU placement. The replaced load
always holds ~10 GB; it is run only when the machine has the memory free (``--before``).

    .venv/bin/python bench/painting_load.py [--dtype float16] [--before] [--width-div 2]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inverse_painting import SD15_UNET  # noqa: E402

GIB = 2 ** 30


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def build_checkpoint(folder: Path, width_div: int = 1) -> dict:
    """The stand-in checkpoint and base folder (kept between runs); ``width_div`` divides the UNet widths."""
    import torch
    from diffusers import UNet2DConditionModel

    from pipelines.inverse_painting.modules import CanvasEncoder, NextClipPredictor, TimeEncoder
    from pipelines.inverse_painting.reference import pruned_reference_prefixes
    from tests.fixtures import build_painting

    folder = folder / f"width_div_{width_div}" if width_div > 1 else folder
    ucfg = dict(SD15_UNET, block_out_channels=tuple(c // width_div for c in SD15_UNET["block_out_channels"]))
    ckpt = folder / "renderer" / "ckpt" / "checkpoint-global_step-200000.ckpt"
    tiny = build_painting.build(folder / "tiny") if not (folder / "tiny" / "diffusers").is_dir() else {
        "base": folder / "tiny" / "diffusers" / build_painting.BASE_NAME,
        "clip": folder / "tiny" / "clip_vision" / build_painting.CLIP_NAME}
    base = Path(tiny["base"])
    (base / "unet" / "config.json").write_text(json.dumps(dict(ucfg, _class_name="UNet2DConditionModel")))
    if not ckpt.is_file():
        with torch.device("meta"):
            shapes = UNet2DConditionModel(**ucfg)
        g = torch.Generator().manual_seed(0)

        def random_fp16(module, skip=()):
            return {k: (torch.randn(v.shape, generator=g) * 0.02).half() for k, v in module.state_dict().items()
                    if not k.startswith(skip)}

        sd = {"unet_state_dict": random_fp16(shapes),
              "referencenet_state_dict": random_fp16(shapes, pruned_reference_prefixes(shapes)),
              "cur_image_guider_state_dict": {k: v.half() for k, v in
                                              CanvasEncoder(4, ucfg["block_out_channels"][0]).state_dict().items()},
              "image_adpater_state_dict": {k: v.half() for k, v in NextClipPredictor().state_dict().items()},
              "PE_state_dict": {k: v.half() for k, v in TimeEncoder().state_dict().items()},
              "global_step": 200000}
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        (ckpt.parent.parent / "config.yaml").write_text(build_painting.CONFIG_YAML)
        torch.save(sd, ckpt)
        del sd
    return {"ckpt": str(ckpt), "base": str(base), "clip": str(tiny["clip"])}


def load_replaced(paths: dict, dtype):
    """The load this bench compares with: whole dict in memory, two float32 UNets initialised, weights copied."""
    from diffusers import UNet2DConditionModel

    from pipelines.common.checkpoints import load_into, load_state_dict
    from pipelines.inverse_painting.reference import pruned_reference_prefixes
    from pipelines.inverse_painting.weights import unet_config

    sd = load_state_dict(paths["ckpt"])
    ucfg = unet_config(paths["base"])
    unet = UNet2DConditionModel.from_config(ucfg)
    load_into(unet, sd["unet_state_dict"], paths["ckpt"], "unet")
    refnet = UNet2DConditionModel.from_config(ucfg)
    load_into(refnet, sd["referencenet_state_dict"], paths["ckpt"], "referencenet",
              allow_missing=pruned_reference_prefixes(refnet))
    del sd
    return unet.to(dtype), refnet.to(dtype)


def run_one(args) -> None:
    import torch

    from pipelines.inverse_painting.renderer import load_renderer

    paths = json.loads(args.paths)
    dtype = getattr(torch, args.dtype)
    start_rss, anon_start = _status("VmRSS"), _status("RssAnon")
    peak = {"anon": anon_start}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], _status("RssAnon"))
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    if args.variant == "streamed":
        kept = load_renderer(paths["ckpt"], paths["base"], paths["clip"], dtype=dtype)
        modules = (kept.unet, kept.referencenet)
    else:
        modules = load_replaced(paths, dtype)
    # read every weight once (as moving to a GPU or the first forward does): mapped pages count from here on
    params = sum(p.numel() for m in modules for p in m.parameters())
    with torch.no_grad():
        checksum = float(sum(p.float().sum() for m in modules for p in m.parameters()))
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    peak["anon"] = max(peak["anon"], _status("RssAnon"))
    print("RESULT " + json.dumps({"peak": _status("VmHWM") - start_rss, "anon": peak["anon"] - anon_start,
                                  "end": _status("VmRSS") - start_rss, "s": seconds, "params": params,
                                  "checksum": checksum}), flush=True)


def measure(variant: str, paths: dict, dtype: str) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--dtype", dtype, "--paths", json.dumps(paths)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        raise SystemExit(f"{variant} failed: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    return json.loads(line[-1][7:])


def _available() -> int:
    with open("/proc/meminfo") as fh:
        return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("MemAvailable:"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/recompose_painting_load")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--before", action="store_true", help="also run the replaced load (needs ~11 GB free)")
    ap.add_argument("--width-div", type=int, default=1, help="divide the UNet widths (1 = SD1.5 size)")
    ap.add_argument("--variant", choices=["streamed", "replaced"])
    ap.add_argument("--paths")
    args = ap.parse_args()
    if args.variant:
        return run_one(args)
    paths = build_checkpoint(Path(args.dir), args.width_div)
    size = os.path.getsize(paths["ckpt"])
    after = measure("streamed", paths, args.dtype)
    shapes = "SD1.5 shapes" if args.width_div == 1 else f"SD1.5 layout, UNet widths / {args.width_div}"
    print(f"# stand-in checkpoint {size / GIB:.2f} GiB (official layout, {shapes}, float16); modules in "
          f"{args.dtype}; {after['params'] / 1e6:.0f}M UNet + ReferenceNet parameters")
    print(f"# streamed load: {after['s']:.1f}s, peak RSS +{after['peak'] / GIB:.2f} GiB (anonymous "
          f"+{after['anon'] / GIB:.2f} GiB), after loading +{after['end'] / GIB:.2f} GiB")
    before = None
    need = 11 * GIB / args.width_div ** 2  # whole file + two float32 UNets, with room to spare
    if args.before and _available() > need:
        before = measure("replaced", paths, args.dtype)
        print(f"# replaced load: {before['s']:.1f}s, peak RSS +{before['peak'] / GIB:.2f} GiB (anonymous "
              f"+{before['anon'] / GIB:.2f} GiB), after loading +{before['end'] / GIB:.2f} GiB")
    elif args.before:
        print(f"# replaced load not run: {_available() / GIB:.1f} GiB available, it needs ~{need / GIB:.0f}")
    print(f"renderer_load_dtype: {args.dtype}")
    print(f"renderer_load_width_div: {args.width_div}")
    print(f"renderer_load_peak_gb: {after['peak'] / GIB:.3f}")
    print(f"renderer_load_peak_anon_gb: {after['anon'] / GIB:.3f}")
    if before:
        print(f"renderer_load_peak_gb_before: {before['peak'] / GIB:.3f}")
        print(f"renderer_load_peak_anon_gb_before: {before['anon'] / GIB:.3f}")


if __name__ == "__main__":
    main()

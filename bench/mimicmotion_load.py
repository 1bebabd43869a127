"""Peak load RAM of the MimicMotion UNet with a full-size stand-in (random fp16 tensors in the
released layouts: an SVD-XT unet/ folder and a MimicMotion_1-1.pth carrying all 1428 UNet tensors).

Both ways run side by side in this one run, each in its own process (so peaks do not mix), in fp16
(what ComfyUI picks on a GPU):
  before  load the SVD UNet from unet/, then merge the MimicMotion file over it (the earlier loader)
  after   pipelines.mimicmotion.loader.build_unet: the UNet built empty from its config, taking
          the file's tensors in place (the SVD UNet weights are not read)
Prints `mimicmotion_load_peak_gb` (after), `mimicmotion_load_peak_gb_before` and their ratio. The
peak is the process' max RSS minus its RSS after imports. Needs ~7 GB of disk in a temp folder and
~7 GB RAM; takes a few minutes on 2 cores.

    .venv/bin/python bench/mimicmotion_load.py
"""
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GB = 1024 ** 3


def write_stand_in(folder: Path) -> None:
    """unet/config.json + unet/diffusion_pytorch_model.fp16.safetensors and MimicMotion_1-1.pth."""
    import torch
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    from pipelines.mimicmotion import loader
    from pipelines.mimicmotion.pose_net import PoseNet

    config = loader.unet_config("/nonexistent")  # the shipped SVD-XT config
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in UNetSpatioTemporalConditionModel.from_config(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    unet = {k: (torch.randn(s, generator=gen) * 0.02).half() for k, s in shapes.items()}
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    save_file(unet, str(folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    state = {"unet." + k: v for k, v in unet.items()}
    del unet
    state.update({"pose_net." + k: v.half() for k, v in PoseNet(320).state_dict().items()})
    torch.save(state, folder / "MimicMotion_1-1.pth")


def load(way: str, folder: Path) -> dict:
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    from pipelines.common.checkpoints import load_state_dict
    from pipelines.mimicmotion import loader

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    weights = str(folder / "MimicMotion_1-1.pth")
    start = time.perf_counter()
    unet_sd, _ = loader.split_weights(load_state_dict(weights), weights)
    if way == "before":
        unet = UNetSpatioTemporalConditionModel.from_pretrained(folder / "unet", variant="fp16", local_files_only=True,
                                                                torch_dtype=torch.float16)
        unet.load_state_dict(unet_sd, strict=False)
    else:
        unet, _ = loader.build_unet(str(folder), unet_sd, weights, torch.float16)
    seconds = time.perf_counter() - start
    tensors = len(unet.state_dict())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_gb": (peak - base) * 1024 / GB, "seconds": seconds, "tensors": tensors}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--load":
        print(json.dumps(load(sys.argv[2], Path(sys.argv[3]))))
        return
    with tempfile.TemporaryDirectory(prefix="mimicmotion_bench_") as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                        f"from bench.mimicmotion_load import write_stand_in; from pathlib import Path; "
                        f"write_stand_in(Path({tmp!r}))"], check=True)
        results = {}
        for way in ("before", "after"):
            out = subprocess.run([sys.executable, __file__, "--load", way, tmp], capture_output=True, text=True,
                                 check=True)
            results[way] = json.loads(out.stdout.strip().splitlines()[-1])
    for way, r in results.items():
        print(f"mimicmotion_load_{way}: {r['tensors']} UNet tensors in {r['seconds']:.1f} s")
    print(f"mimicmotion_load_peak_gb_before: {results['before']['peak_gb']:.2f}")
    print(f"mimicmotion_load_peak_gb: {results['after']['peak_gb']:.2f}")
    print(f"mimicmotion_load_peak_ratio: {results['after']['peak_gb'] / results['before']['peak_gb']:.3f}")


if __name__ == "__main__":
    main()

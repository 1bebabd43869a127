"""Portrait editing (MCDM) on an SD1.5-size 8-channel UNet (random init), CPU, 32x32 latents.

  cfg_batch_speedup   one eq. 5.1 guidance step with the 4 branches in one batched call / one call per branch
                      (both through the native guider, core's calc_cond_batch)
  mask_batch_speedup  the editing mask with 10 noise draws: one call per draw / all draws in one batch
  native_step_ratio   native guider step / the official diffusers formulation (4 branches concatenated into one
                      UNet2DConditionModel call, then eq. 5.1), the two sharing the same weights
  native_step_ratio_cpu_default_attention   the same with ComfyUI's CPU default attention (sub-quadratic)

ComfyUI picks its attention kernel by device: PyTorch SDPA on NVIDIA GPUs (what diffusers uses everywhere),
sub-quadratic chunking on CPU unless started with --use-pytorch-cross-attention. The native side runs with
SDPA, as a GPU user gets it; the CPU default is timed beside it so both figures come from one run.

Each variant is timed in the same process, round-robin over ROUNDS rounds; the minimum is reported with the
spread (max / min) of each variant.

    .venv/bin/python bench/portrait_edit.py
"""
import importlib
import importlib.util
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ROUNDS, LATENT, DRAWS = 7, 32, 10
SCALES = (3.0, 2.0, 4.0)


def _pack():
    from scripts.harness.server import COMFY_DIR

    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True
    args.use_pytorch_cross_attention = True  # ComfyUI's default on NVIDIA; see the docstring
    spec = importlib.util.spec_from_file_location("recompose_pack", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["recompose_pack"] = pack
    spec.loader.exec_module(pack)
    return importlib.import_module("recompose_pack.nodes._portrait_native")


def _share_weights(unet, patcher):
    """Point the diffusers UNet's parameters at the native model's tensors (one copy of SD1.5 in memory)."""
    import comfy.utils

    from pipelines.portrait_edit.unet import ldm_block_structure

    state = unet.state_dict()
    key_map = comfy.utils.unet_to_diffusers(ldm_block_structure(state))
    native = patcher.model.diffusion_model.state_dict()
    for name, tensor in unet.named_parameters():
        tensor.data = native[key_map[name]]


def _conds():
    g = torch.Generator().manual_seed(0)
    text = {k: torch.randn(1, 77, 768, generator=g) for k in ("pos", "neg")}
    image, null = torch.randn(1, 50, 768, generator=g), torch.randn(1, 50, 768, generator=g)
    c_s = torch.randn(1, 4, LATENT, LATENT, generator=g)
    cat = lambda a, b: torch.cat([a, b], dim=1)  # noqa: E731
    native = {"positive": [[cat(text["pos"], image), {"concat_latent_image": c_s}]],
              "image": [[cat(text["neg"], image), {"concat_latent_image": c_s}]],
              "embedding": [[cat(text["neg"], image), {}]],
              "negative": [[cat(text["neg"], null), {}]]}
    # the official pipeline's batch order: [uncond, all, image embedding, image embedding + c_s]
    official = (torch.cat([cat(text["neg"], null), cat(text["pos"], image), cat(text["neg"], image),
                           cat(text["neg"], image)]),
                torch.cat([torch.zeros_like(c_s), c_s, torch.zeros_like(c_s), c_s]))
    return native, official, c_s


def _guider_step(native, patcher, conds, batched, x, sigma):
    import comfy.samplers

    guider = native.MultiConditionGuider(patcher)
    guider.batch_branches = batched
    guider.set_branches(**conds)
    guider.scales = SCALES
    noise = torch.zeros_like(x)
    guider.sample(noise, x, comfy.samplers.KSAMPLER(native._single_model_call), torch.tensor([sigma, 0.0]),
                  disable_pbar=True, seed=0)


def _with_sub_quad_attention(run):
    import comfy.ldm.modules.attention as attention

    chosen = attention.optimized_attention
    attention.optimized_attention = attention.attention_sub_quad
    try:
        run()
    finally:
        attention.optimized_attention = chosen


def _official_step(unet, official, x, t):
    hidden, concat = official
    out = unet(torch.cat([torch.cat([x] * 4), concat], dim=1), t, encoder_hidden_states=hidden).sample
    u, full, emb, emb_cs = out.chunk(4)
    s1, s2, s3 = SCALES
    return u + s1 * (emb - u) + s2 * (emb_cs - emb) + s3 * (full - emb_cs)


def main():
    from diffusers import UNet2DConditionModel

    native = _pack()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(in_channels=8, cross_attention_dim=768).eval()  # SD1.5 layout, conv_in 8
    patcher = native.mcdm_from_state_dict(unet.state_dict(), "bench")
    _share_weights(unet, patcher)
    conds, official, c_s = _conds()
    x = torch.randn(1, 4, LATENT, LATENT)
    sigma = native.mask_sigma(patcher, 20, 10)
    t = torch.tensor(500)
    seeds = list(range(DRAWS))
    target, rec = conds["positive"], [[conds["positive"][0][0].flip(1), conds["positive"][0][1]]]
    variants = {
        "cfg_batched": lambda: _guider_step(native, patcher, conds, True, x, sigma),
        "cfg_sequential": lambda: _guider_step(native, patcher, conds, False, x, sigma),
        "cfg_batched_cpu_default_attention": lambda: _with_sub_quad_attention(
            lambda: _guider_step(native, patcher, conds, True, x, sigma)),
        "official_step": lambda: _official_step(unet, official, x * 0.18215, t),
        "mask_batched": lambda: native.editing_mask(patcher, target, rec, c_s, sigma, seeds, 0.2),
        "mask_per_draw": lambda: native.editing_mask(patcher, target, rec, c_s, sigma, seeds, 0.2, batched=False),
    }
    times = {k: [] for k in variants}
    with torch.inference_mode():
        for run in variants.values():  # warm-up (and the model's first placement)
            run()
        for _ in range(ROUNDS):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    for name, ts in times.items():
        print(f"{name}_s: {best[name]:.3f} (spread {max(ts) / min(ts):.2f}x over {len(ts)} rounds)")
    print(f"cfg_batch_speedup: {best['cfg_sequential'] / best['cfg_batched']:.3f}")
    print(f"mask_batch_speedup: {best['mask_per_draw'] / best['mask_batched']:.3f}")
    print(f"native_step_ratio: {best['cfg_batched'] / best['official_step']:.3f}")
    print("native_step_ratio_cpu_default_attention: "
          f"{best['cfg_batched_cpu_default_attention'] / best['official_step']:.3f}")


if __name__ == "__main__":
    main()

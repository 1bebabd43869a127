"""The tiny SD1.5 checkpoint (tests/fixtures/build_sd15_tiny.py) goes through core ComfyUI's
checkpoint loader as users' files do: detected as SD1.5, every weight of the UNet, the CLIP-L text
encoder and the (TAESD) VAE comes from the file, and a sampling pass gives finite, varied images."""
import sys
import time

import pytest
import torch
from safetensors import safe_open

from scripts.harness.server import COMFY_DIR
from tests.fixtures.build_sd15_tiny import CHECKPOINT_NAME, build

PREFIXES = ("model.diffusion_model.", "cond_stage_model.transformer.text_model.", "first_stage_model.")
# absent from official SD1.5 files too; core leaves them unused for SD1.5 conditioning
CLIP_NOT_IN_SD15_FILES = {"clip_l.logit_scale", "clip_l.transformer.text_projection.weight"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    start = time.perf_counter()
    path = build(tmp_path_factory.mktemp("models"))
    seconds = time.perf_counter() - start
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    return path, keys, seconds


@pytest.fixture(scope="module")
def loaded(checkpoint):
    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; model_management reads it on import
    import comfy.sd

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(checkpoint[0]))
    return model, clip, vae


def _under(keys, prefix, new_prefix=""):
    return {new_prefix + k[len(prefix):] for k in keys if k.startswith(prefix)}


def test_file_is_the_ldm_single_file_layout_and_builds_fast(checkpoint):
    path, keys, seconds = checkpoint
    assert path.name == CHECKPOINT_NAME and path.parent.name == "checkpoints"
    assert all(k.startswith(PREFIXES) for k in keys)
    assert all(any(k.startswith(p) for k in keys) for p in PREFIXES)
    assert seconds < 20, f"building took {seconds:.1f}s"
    with safe_open(str(path), "pt") as f:
        assert all(torch.isfinite(f.get_tensor(k).float()).all() for k in keys)


def test_core_loader_detects_sd15_and_every_weight_comes_from_the_file(checkpoint, loaded):
    _, keys, _ = checkpoint
    model, clip, vae = loaded
    config = model.model.model_config
    assert type(config).__name__ == "SD15"
    assert config.unet_config["context_dim"] == 768 and config.unet_config["channel_mult"] == [1]
    assert set(model.model.diffusion_model.state_dict()) == _under(keys, PREFIXES[0])
    assert type(vae.first_stage_model).__name__ == "TAESD"
    assert set(vae.first_stage_model.state_dict()) == _under(keys, PREFIXES[2])
    expected_clip = _under(keys - {PREFIXES[1] + "embeddings.position_ids"}, PREFIXES[1],
                           "clip_l.transformer.text_model.")
    assert set(clip.cond_stage_model.state_dict()) - CLIP_NOT_IN_SD15_FILES == expected_clip


def test_sampling_encoding_and_decoding_give_finite_varied_images(loaded):
    import comfy.sample

    model, clip, vae = loaded
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a person in a mirror"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    assert torch.isfinite(positive[0][0]).all() and positive[0][0].std() > 0.1
    assert not torch.allclose(positive[0][0], negative[0][0])

    images = torch.linspace(0, 1, 64).view(1, 1, 64, 1).expand(2, 64, 64, 3).contiguous()
    latent = vae.encode(images)
    assert latent.shape == (2, 4, 8, 8) and torch.isfinite(latent).all()
    noise = comfy.sample.prepare_noise(latent, 0)
    sampled = comfy.sample.sample(model, noise, 2, 5.0, "euler", "normal", positive, negative, latent,
                                  denoise=0.75, seed=0, disable_pbar=True)
    decoded = vae.decode(sampled)
    assert decoded.shape == (2, 64, 64, 3) and torch.isfinite(decoded).all()
    for image in decoded:
        assert image.std() > 0.05 and 0.1 < image.mean() < 0.9  # not constant, not clipped to black or white

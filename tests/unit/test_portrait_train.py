"""MCDM training rules (thesis 5.2.3, 5.5.2) and a short run: conv_in widening, the 5% identity pairs, the 20%
condition dropout over every non-empty subset, and a few dozen steps on a tiny UNet lowering the loss, writing
checkpoints the MCDM loader reads and resuming from them."""
import json
import random
import zlib
from collections import Counter

import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.portrait_edit import train
from pipelines.portrait_edit.adapter import EmbeddingAdapter, load_adapter
from pipelines.portrait_edit.unet import read_unet


def test_training_constants_are_the_thesis_values():
    assert (train.LEARNING_RATE, train.BATCH_SIZE) == (5e-6, 4)
    assert (train.IDENTITY_PAIR_PROBABILITY, train.CONDITION_DROPOUT) == (0.05, 0.2)
    assert len(train.DROPPABLE_SUBSETS) == 7 and frozenset({"spatial", "image", "text"}) in train.DROPPABLE_SUBSETS


def test_condition_dropout_draws_every_subset_equally_20_percent_of_the_time():
    rng = random.Random(0)
    n = 70000
    counts = Counter(train.condition_drops(rng) for _ in range(n))
    assert counts[frozenset()] / n == pytest.approx(0.8, abs=0.01)
    for subset in train.DROPPABLE_SUBSETS:
        assert counts[subset] / n == pytest.approx(0.2 / 7, abs=0.004)


def test_identity_pairs_replace_target_and_prompt_5_percent_of_the_time():
    record = {"source": "condition/1.png", "target": "gt/1.png", "prompt": "a man, santa", "source_prompt": "a man"}
    rng = random.Random(1)
    picks = [train.training_pair(record, rng) for _ in range(40000)]
    identity = [p for p in picks if p[1] == "condition/1.png"]
    assert len(identity) / len(picks) == pytest.approx(0.05, abs=0.005)
    assert set(identity) == {("condition/1.png", "condition/1.png", "a man")}
    assert set(picks) - set(identity) == {("condition/1.png", "gt/1.png", "a man, santa")}


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    # cross-attention only at the lower resolution: 64x64 latents (512x512 images) stay cheap on a CPU
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=768,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)


def tiny_mcdm():
    return train.MCDMTrainable(train.widen_conv_in(_tiny_unet()), EmbeddingAdapter())


def test_widened_conv_in_keeps_the_pretrained_channels_and_zeroes_the_new():
    unet = _tiny_unet()
    old = unet.conv_in
    x = torch.randn(1, 4, 8, 8)
    before = old(x)
    train.widen_conv_in(unet)
    assert unet.conv_in.in_channels == 8 and unet.config.in_channels == 8
    assert torch.equal(unet.conv_in.weight[:, :4], old.weight) and torch.equal(unet.conv_in.weight[:, 4:],
                                                                               torch.zeros_like(old.weight))
    torch.testing.assert_close(unet.conv_in(torch.cat([x, torch.randn_like(x)], 1)), before)


def _stub_encoders():
    """Deterministic stand-ins for the frozen CLIP text / vision encoders and the VAE."""
    g = torch.Generator().manual_seed(5)
    patch_proj = torch.randn(3 * 64 * 64, 768, generator=g) / 64

    def text(prompts):
        rows = [torch.randn(77, 768, generator=torch.Generator().manual_seed(zlib.crc32(p.encode()))) for p in prompts]
        return torch.stack(rows)

    def clip(images):
        patches = torch.nn.functional.unfold(images, 64, stride=64)  # [B, 3*64*64, 64] for 512x512
        tokens = patches.transpose(1, 2) @ patch_proj  # 64 patches -> keep 50
        return tokens[:, :50]

    def vae(images):
        x = torch.nn.functional.avg_pool2d(images * 2 - 1, 8)
        return torch.cat([x, x.mean(1, keepdim=True)], 1)

    return train.Encoders(text, clip, vae)


def write_pair_folder(root):
    """Two pairs of example photos, 64x64, in the official layout."""
    from PIL import Image

    from scripts.harness.examples import EXAMPLES

    (root / "train" / "condition").mkdir(parents=True)
    (root / "train" / "gt").mkdir()
    lines = []
    for i, (a, b) in enumerate([("recompose_astronaut.jpg", "recompose_chelsea.jpg"),
                                ("recompose_grace_hopper.jpg", "recompose_coffee.jpg")]):
        Image.fromarray(np.asarray(EXAMPLES[a]())).resize((64, 64)).save(root / "train" / "condition" / f"{i}.png")
        Image.fromarray(np.asarray(EXAMPLES[b]())).resize((64, 64)).save(root / "train" / "gt" / f"{i}.png")
        lines.append(json.dumps({"source": f"condition/{i}.png", "target": f"gt/{i}.png",
                                 "prompt": "a man, santa claus costume", "source_prompt": "a man"}))
    (root / "train" / "prompt.json").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def data_dir(tmp_path):
    return write_pair_folder(tmp_path / "data")


def _eval_loss(model, encoders, scheduler, data_dir):
    sources = torch.stack([train.load_image(str(data_dir), f"condition/{i}.png") for i in (0, 1)])
    targets = torch.stack([train.load_image(str(data_dir), f"gt/{i}.png") for i in (0, 1)])
    batch = train.conditions(encoders, sources, targets, ["a man, santa claus costume"] * 2, [frozenset()] * 2)
    with torch.no_grad():
        return float(sum(train.mcdm_loss(model, scheduler, *batch, generator=torch.Generator().manual_seed(s))
                         for s in range(8)) / 8)


def test_a_short_run_lowers_the_loss_writes_loader_files_and_resumes(data_dir, tmp_path, one_thread):
    from diffusers import DDPMScheduler

    model = tiny_mcdm()
    encoders, scheduler = _stub_encoders(), DDPMScheduler(num_train_timesteps=1000)
    out = tmp_path / "out"
    before = _eval_loss(model, encoders, scheduler, data_dir)
    losses = train.train(model, encoders, scheduler, str(data_dir), str(out), steps=30, lr=1e-3, batch_size=2,
                         save_every=15)
    after = _eval_loss(model, encoders, scheduler, data_dir)
    assert len(losses) == 30 and after < 0.8 * before, (before, after)

    folder = out / "checkpoint-30"
    assert (out / "checkpoint-15").is_dir()
    unet_state = torch.load(folder / "unet.pth", weights_only=True)
    assert all(k.startswith("module.") for k in unet_state)
    assert read_unet(str(folder / "unet.pth"))["conv_in.weight"].shape[1] == 8  # what the MCDM loader reads
    torch.testing.assert_close(load_adapter(str(folder / "adapter.pth")).linear1.weight, model.adapter.linear1.weight)

    resumed = tiny_mcdm()
    more = train.train(resumed, encoders, scheduler, str(data_dir), str(out), steps=32, lr=1e-3, batch_size=2)
    assert len(more) == 2 and (out / "checkpoint-32").is_dir()
    torch.testing.assert_close(_eval_loss(resumed, encoders, scheduler, data_dir), after, rtol=0.3, atol=0.05)


def test_a_folder_without_the_official_layout_is_explained(tmp_path):
    with pytest.raises(InputError, match="train/prompt.json"):
        train.read_records(str(tmp_path))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "prompt.json").write_text(json.dumps({"source": "a.png", "prompt": "x"}) + "\n")
    with pytest.raises(InputError, match="lacks target, source_prompt"):
        train.read_records(str(tmp_path))
    with pytest.raises(InputError, match="outside the data folder"):
        train.load_image(str(tmp_path), "../../etc/passwd")

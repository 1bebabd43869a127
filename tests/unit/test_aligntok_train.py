"""AlignTok training plumbing: resumable stages, the CLI, a tokenizer from a local DINOv2 folder."""
import pytest
import torch

from pipelines.aligntok.init import load_dinov2_state, tokenizer_from_dinov2
from pipelines.aligntok.model import AlignTok, load_tokenizer, save_tokenizer
from pipelines.aligntok.train import StageSettings, load_training_state, stage_loss, train_stage
from pipelines.common import CheckpointFormatError, InputError
from tests.fixtures.build_aligntok import tiny_config


def fixed_batches(n=4, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(2, 3, 32, 32, generator=g) for _ in range(n)]


def test_a_resumed_stage_ends_where_an_uninterrupted_one_does(tmp_path):
    data = fixed_batches()
    settings = dict(lr=1e-3, gan_start=1, w_gan=0.5, ema_decay=0.5)
    torch.manual_seed(0)
    start = AlignTok(tiny_config())
    start_state = {k: v.clone() for k, v in start.state_dict().items()}
    straight = train_stage(start, iter(data), StageSettings(2, steps=4, **settings))

    ckpt = tmp_path / "stage2.pt"
    first = AlignTok(tiny_config())
    first.load_state_dict(start_state)
    train_stage(first, iter(data[:2]), StageSettings(2, steps=2, **settings), checkpoint=ckpt, checkpoint_every=1)
    assert load_training_state(ckpt)["step"] == 2
    again = AlignTok(tiny_config())
    again.load_state_dict(start_state)  # the same stage-1 start; model + frozen ref come from the file
    resumed = train_stage(again, iter(data[2:]), StageSettings(2, steps=4, **settings), checkpoint=ckpt)
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-5), k
    with pytest.raises(InputError, match="stage 2, not stage 3"):
        train_stage(AlignTok(tiny_config()), iter(data), StageSettings(3, steps=4), checkpoint=ckpt)


def test_cli_trains_from_an_image_folder(tmp_path):
    import numpy as np
    from PIL import Image

    from pipelines.aligntok.train import main

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    torch.manual_seed(0)
    save_tokenizer(AlignTok(tiny_config()), tmp_path / "init.safetensors")
    main(["--data", str(tmp_path), "--init", str(tmp_path / "init.safetensors"), "--out", str(tmp_path / "s1.safetensors"),
          "--stage", "1", "--steps", "2", "--size", "32", "--batch-size", "2", "--resume", str(tmp_path / "s1.pt")])
    trained = load_tokenizer(tmp_path / "s1.safetensors")
    assert load_training_state(tmp_path / "s1.pt")["step"] == 2
    assert trained.encode(torch.rand(1, 3, 32, 32)).shape == (1, 8, 2, 2)


def test_tokenizer_from_a_local_dinov2_folder(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    dino = Dinov2Model(Dinov2Config(**tiny_config().encoder))
    dino.save_pretrained(tmp_path / "dinov2")
    tok = tokenizer_from_dinov2(tmp_path / "dinov2", latent_dim=8, adapter_hidden=16,
                                decoder_channels=(8, 8, 16, 16, 32), decoder_layers=1, norm_groups=4)
    for k, v in dino.state_dict().items():
        assert torch.equal(v, tok.encoder.state_dict()[k])
    save_tokenizer(tok, tmp_path / "tok.safetensors")
    assert load_tokenizer(tmp_path / "tok.safetensors").encode(torch.rand(1, 3, 48, 32)).shape == (1, 8, 3, 2)

    # the same weights as a prefixed state dict (e.g. from a clip_vision checkpoint)
    fresh = AlignTok(tiny_config())
    load_dinov2_state(fresh, {f"vision_model.{k}": v for k, v in dino.state_dict().items()})
    assert torch.equal(fresh.encoder.embeddings.patch_embeddings.projection.weight,
                       dino.embeddings.patch_embeddings.projection.weight)
    with pytest.raises(InputError, match="config.json"):
        tokenizer_from_dinov2(tmp_path)
    with pytest.raises(CheckpointFormatError, match="No DINOv2 weights"):
        load_dinov2_state(fresh, {"x": torch.zeros(1)})


# --- the thesis 7.5 recipe -------------------------------------------------------------------

def test_stage_defaults_are_the_thesis_values():
    assert [StageSettings(s).lr for s in (1, 2, 3)] == [1e-4, 1e-5, 1e-4]
    assert [StageSettings(s).gan_start for s in (1, 2, 3)] == [5000, 0, 0]
    s = StageSettings(2)
    assert (s.w_perceptual, s.w_gan, s.w_sp) == (1.0, 0.5, 1.0)
    assert StageSettings(2, lr=3e-5, gan_start=7).lr == 3e-5 and StageSettings(2, gan_start=7).gan_start == 7
    with pytest.raises(InputError, match="stages 1, 2 and 3"):
        StageSettings(4)


def test_cli_defaults_to_the_stage_values(tmp_path, monkeypatch):
    from pipelines.aligntok import train

    seen = {}
    monkeypatch.setattr(train, "load_tokenizer", lambda *a, **k: AlignTok(tiny_config()))
    monkeypatch.setattr(train, "image_folder_batches", lambda *a, **k: iter(()))
    monkeypatch.setattr(train, "save_tokenizer", lambda *a, **k: None)
    monkeypatch.setattr(train, "train_stage", lambda model, batches, settings, **k: seen.setdefault(settings.stage, settings))
    for stage in (1, 2, 3):
        train.main(["--data", "x", "--init", "x", "--out", "x", "--stage", str(stage)])
    assert [(seen[s].lr, seen[s].gan_start) for s in (1, 2, 3)] == [(1e-4, 5000), (1e-5, 0), (1e-4, 0)]


def gan_runs(stage, step):
    from pipelines.aligntok.losses import PatchDiscriminator

    torch.manual_seed(0)
    model = AlignTok(tiny_config())
    frozen = AlignTok(tiny_config())
    _, _, parts = stage_loss(model, frozen, PatchDiscriminator(), torch.rand(2, 3, 32, 32), StageSettings(stage), step)
    return "gan" in parts


def test_gan_starts_after_5k_steps_in_stage_1_only():
    assert (gan_runs(1, 4999), gan_runs(1, 5000)) == (False, True)
    assert gan_runs(2, 0) and gan_runs(3, 0)


def test_l_sp_enters_stage_2_with_weight_w_sp():
    torch.manual_seed(0)
    model, frozen = AlignTok(tiny_config()), AlignTok(tiny_config())  # different weights: L_sp > 0
    x = torch.rand(2, 3, 32, 32)

    def total(w_sp):
        loss, _, parts = stage_loss(model, frozen, None, x, StageSettings(2, w_gan=0.0, w_sp=w_sp), 0)
        return loss.item(), parts

    base, _ = total(0.0)
    one, parts = total(1.0)
    two, _ = total(2.0)
    assert parts["sp"] > 0 and one > base
    assert two - base == pytest.approx(2 * (one - base), rel=1e-5)  # linear in w_sp: w_sp * lambda * L_sp
    assert "sp" not in stage_loss(model, frozen, None, x, StageSettings(3, w_gan=0.0), 0)[2]


def one_step(stage, ema_decay):
    torch.manual_seed(0)
    model = AlignTok(tiny_config())
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trained = train_stage(model, iter(fixed_batches(1)), StageSettings(stage, steps=1, lr=1e-2, ema_decay=ema_decay,
                                                                     w_gan=0.0))
    return start, trained.state_dict()


@pytest.mark.parametrize("stage", [2, 3])
def test_stages_2_and_3_return_the_ema_weights(stage, one_thread):
    start, raw = one_step(stage, 0.0)  # decay 0: the EMA is the trained weights themselves
    _, ema = one_step(stage, 0.25)
    key = "decoder.conv_out.weight"
    assert not torch.allclose(start[key], raw[key])
    assert torch.allclose(ema[key], 0.25 * start[key] + 0.75 * raw[key], atol=1e-7)


def test_stage_1_returns_the_trained_weights(one_thread):
    _, raw = one_step(1, 0.0)
    _, with_decay = one_step(1, 0.25)
    assert all(torch.equal(raw[k], with_decay[k]) for k in raw)


def test_the_discriminator_is_saved_and_carried_into_the_next_stage(tmp_path, one_thread):
    from pipelines.aligntok.train import discriminator_for

    torch.manual_seed(0)
    fresh = AlignTok(tiny_config())
    assert fresh.discriminator_state == {}
    trained = train_stage(fresh, iter(fixed_batches(2)), StageSettings(1, steps=2, lr=1e-3, gan_start=0))
    trained_disc = trained.discriminator_state
    torch.manual_seed(0)
    initial = discriminator_for(AlignTok(tiny_config()), "cpu").state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in trained_disc.items())  # it trained
    save_tokenizer(trained, tmp_path / "s1.safetensors")
    loaded = load_tokenizer(tmp_path / "s1.safetensors")
    assert loaded.discriminator_state.keys() == trained_disc.keys()
    assert all(torch.equal(loaded.discriminator_state[k], v) for k, v in trained_disc.items())
    carried = discriminator_for(loaded, "cpu").state_dict()
    assert all(torch.equal(carried[k], v) for k, v in trained_disc.items())
    # stage 2 goes on from it: a 1-step stage 2 with lr 0 ends with exactly the carried discriminator
    kept = train_stage(loaded, iter(fixed_batches(1)), StageSettings(2, steps=1, lr=0.0))
    assert all(torch.equal(kept.discriminator_state[k], v) for k, v in trained_disc.items())


def test_training_crops_are_random_windows_of_the_resized_image():
    import numpy as np
    from PIL import Image

    from pipelines.aligntok.train import random_crop

    rng = np.random.default_rng(0)
    wide = Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8))  # 128 wide, 64 high
    resized = np.asarray(wide.resize((64, 32), Image.BICUBIC))  # shorter side -> 32, aspect kept
    gen = torch.Generator().manual_seed(0)
    lefts = set()
    for _ in range(12):
        crop = np.asarray(random_crop(wide, 32, gen))
        assert crop.shape == (32, 32, 3)
        matches = [x for x in range(33) if np.array_equal(crop, resized[:, x:x + 32])]
        assert matches, "not a window of the image resized to shorter side 32"
        lefts.add(matches[0])
    assert len(lefts) > 3  # random offsets, not the centre (16) every time

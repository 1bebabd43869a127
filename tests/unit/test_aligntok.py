"""AlignTok: shapes at any aspect ratio, save/load, format checks, what each stage trains,
L_sp, the adaptive weight, EMA, tiled decoding."""
import pytest
import torch

from pipelines.common import CheckpointFormatError, InputError
from pipelines.aligntok.losses import gradient_ratio, semantic_preservation_loss
from pipelines.aligntok.model import AlignTok, load_tokenizer, save_tokenizer
from pipelines.aligntok.probe import linear_probe_accuracy
from pipelines.aligntok.tiling import tiled_decode
from pipelines.aligntok.train import EMA, StageSettings, stage_loss, train_stage
from tests.fixtures.build_aligntok import tiny_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AlignTok(tiny_config()).eval()


@pytest.mark.parametrize("h,w", [(32, 32), (48, 80), (64, 16)])
def test_latent_grid_is_one_sixteenth(model, h, w):
    with torch.no_grad():
        z = model.encode(torch.rand(2, 3, h, w))
        assert z.shape == (2, 8, h // 16, w // 16)
        assert model.decode(z).shape == (2, 3, h, w)


def test_odd_sizes_and_wrong_channels_are_explained(model):
    with pytest.raises(InputError, match="multiples of 16"):
        model.encode(torch.rand(1, 3, 40, 32))
    with pytest.raises(InputError, match="8-channel"):
        model.decode(torch.rand(1, 4, 2, 2))


def test_save_load_roundtrip_and_format_checks(model, tmp_path):
    path = tmp_path / "tok.safetensors"
    save_tokenizer(model, path)
    again = load_tokenizer(path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)
    from safetensors.torch import load_file, save_file

    save_file(load_file(path), tmp_path / "old.safetensors",
              metadata={"format": "aligntok", "format_version": "0", "config": model.config.to_json()})
    with pytest.raises(CheckpointFormatError, match="version 0"):
        load_tokenizer(tmp_path / "old.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointFormatError, match="other.safetensors"):
        load_tokenizer(tmp_path / "other.safetensors")


def batches(n=2, size=32):
    g = torch.Generator().manual_seed(1)
    while True:
        yield torch.rand(n, 3, size, size, generator=g)


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize("stage,moves", [(1, (False, True, True)), (2, (True, True, True)), (3, (False, False, True))])
def test_each_stage_trains_only_its_parts(stage, moves):
    torch.manual_seed(0)
    m = AlignTok(tiny_config())
    before = [snapshot(p) for p in (m.encoder, m.adapter, m.decoder)]
    settings = StageSettings(stage, steps=2, lr=1e-3, gan_start=1, ema_decay=0.0)
    trained = train_stage(m, batches(), settings)
    got = tuple(changed(b, p) for b, p in zip(before, (trained.encoder, trained.adapter, trained.decoder)))
    assert got == moves


def test_l_sp_is_zero_at_the_start_of_stage_2(model):
    x = torch.rand(2, 3, 32, 32)
    frozen = AlignTok(tiny_config())
    frozen.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert float(semantic_preservation_loss(model.encode(x), frozen.encode(x))) == 0.0
    _, _, parts = stage_loss(model, frozen, None, x, StageSettings(2, w_gan=0.0), step=0)
    assert parts["sp"] == 0.0


def test_adaptive_weight_equalises_gradient_norms():
    w = torch.randn(4, 4, requires_grad=True)
    main = (w * 3).sum()
    extra = (w * 0.5).pow(2).sum()
    lam = gradient_ratio(main, extra, w)
    g_main = torch.autograd.grad(main, w, retain_graph=True)[0].norm()
    g_extra = torch.autograd.grad(lam * extra, w)[0].norm()
    assert torch.isclose(g_main, g_extra, rtol=1e-4)


def test_ema_moves_towards_the_weights():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, 0.9)
    start = ema.shadow["weight"].clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)
    assert torch.allclose(ema.shadow["weight"], start + 0.1)


def test_tiled_decode_matches_whole_decode_away_from_seams(model):
    z = torch.randn(1, 8, 6, 10)
    with torch.no_grad():
        whole = model.decode(z)
    tiled = tiled_decode(model, z, tile=6, overlap=2)
    assert tiled.shape == whole.shape and torch.isfinite(tiled).all()
    assert (tiled - whole).abs().mean() < 0.1


def test_linear_probe_separates_separable_latents(model):
    x = torch.rand(40, 3, 32, 32) * 0.2
    labels = torch.arange(40) % 2
    x[labels == 1] += 0.7
    acc = linear_probe_accuracy(model, x[:30], labels[:30].numpy(), x[30:], labels[30:].numpy())
    assert acc == 1.0

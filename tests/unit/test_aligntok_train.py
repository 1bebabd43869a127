"""AlignTok training plumbing: resumable stages, the CLI, a tokenizer from a local DINOv2 folder."""
import pytest
import torch

from pipelines.aligntok.init import load_dinov2_state, tokenizer_from_dinov2
from pipelines.aligntok.model import AlignTok, load_tokenizer, save_tokenizer
from pipelines.aligntok.train import StageSettings, load_training_state, train_stage
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

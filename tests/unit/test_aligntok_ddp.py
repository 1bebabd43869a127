"""AlignTok training under two processes (gloo, as `accelerate launch --cpu --num_processes 2`)
trains ONE model: both ranks end with the same weights, and those are the weights one
process reaches on the union of the two ranks' batches (so the gradients and the adaptive
GAN / L_sp weights really are all-reduced)."""
import torch

from pipelines.aligntok.model import AlignTok
from pipelines.aligntok.train import StageSettings, train_stage
from tests.fixtures.build_aligntok import tiny_config
from tests.unit.ddp_helpers import aligntok_rank, run_processes


def differing(a: dict, b: dict, atol: float) -> list:
    """The keys where a and b differ by more than atol."""
    return [k for k in a if not torch.allclose(a[k], b[k], atol=atol, rtol=0)]


def fraction_differing(a: dict, b: dict, atol: float) -> float:
    """The fraction of all elements where a and b differ by more than atol."""
    return sum(int(((a[k] - b[k]).abs() > atol).sum()) for k in a) / sum(a[k].numel() for k in a)


def test_two_processes_train_one_model_on_the_union_of_their_batches(tmp_path, one_thread):
    torch.manual_seed(0)
    start = AlignTok(tiny_config())
    torch.save(start.state_dict(), tmp_path / "start.pt")
    g = torch.Generator().manual_seed(5)
    union = [torch.rand(4, 3, 32, 32, generator=g) for _ in range(2)]  # each rank takes 2 of the 4
    torch.save(union, tmp_path / "batches.pt")
    # stage 2: every part trains, GAN and L_sp (both with adaptive weights) from the first step
    settings = StageSettings(2, steps=2, lr=1e-3, ema_decay=0.0)
    assert settings.gan_start == 0

    run_processes(aligntok_rank, tmp_path / "start.pt", tmp_path / "batches.pt", settings, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = train_stage(start, iter(union), settings)

    assert differing(ranks[0]["model"], ranks[1]["model"], atol=0) == []
    assert differing(ranks[0]["disc"], ranks[1]["disc"], atol=0) == []
    # AdamW steps every weight by ~lr whatever its gradient's size, so round-off on near-zero gradients
    # (attention key biases, whose true gradient is 0; a stray discriminator element) moves a few elements
    # by a fraction of lr: 31 of 850,000 here. Training on one rank's half alone, without the all-reduce,
    # moves 84 % of the model's elements and 99 % of the discriminator's by more than 1e-4.
    assert fraction_differing(ranks[0]["model"], single.state_dict(), atol=1e-4) < 1e-3
    assert fraction_differing(ranks[0]["disc"], single.discriminator_state, atol=1e-4) < 1e-3
    moved = torch.load(tmp_path / "start.pt", weights_only=True)
    assert differing(moved, single.state_dict(), atol=1e-4) != []  # the step did change the weights

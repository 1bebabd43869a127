"""The per-capture fine-tune under two processes (gloo, as `accelerate launch --cpu
--num_processes 2`) trains ONE UNet: both ranks end with the same weights, equal to one
process stepping on the mean of the two ranks' masked losses, i.e. on their union (every
augmentation shares the inpainting mask M, so each rank's loss is normalised by the same
mask area and the union's loss is the mean of the two)."""
import torch

from pipelines.common.progress import no_progress
from pipelines.selfie_finetune.train import (
    diffusion_loss,
    encode_samples,
    training_scheduler,
)
from tests.unit.ddp_helpers import run_processes, selfie_finetune_rank
from tests.unit.test_selfie_finetune import make_capture, tiny_pipe

STEPS, LR, BATCH = 2, 1e-3, 2


def union_steps(pipe, capture) -> dict:
    """What two ranks seeded 0 and 1 (finetune_unet's per-rank seeds) should reach together."""
    unet = pipe.unet.requires_grad_(True)
    encoded = encode_samples(pipe.vae, capture, BATCH, "cpu", no_progress())
    condition = pipe.encode_selfies(capture.selfie_images).detach()
    schedule = training_scheduler(pipe.scheduler)
    opt = torch.optim.AdamW(unet.parameters(), lr=LR)
    gens = [torch.Generator().manual_seed(rank) for rank in (0, 1)]
    for _ in range(STEPS):
        losses = [diffusion_loss(unet, schedule, encoded, torch.randint(len(encoded), (BATCH,), generator=g),
                                 condition, g) for g in gens]
        opt.zero_grad()
        (sum(losses) / len(losses)).backward()
        opt.step()
    return unet.state_dict()


def test_two_processes_fine_tune_one_unet_on_the_union_of_their_batches(tmp_path, one_thread):
    capture = make_capture()
    assert all(torch.equal(capture[i][1], capture.mask) for i in range(len(capture)))
    run_processes(selfie_finetune_rank, STEPS, LR, BATCH, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    pipe = tiny_pipe()
    start = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    union = union_steps(pipe, capture)

    assert [k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])] == []
    # AdamW moves each weight by ~lr per step whatever its gradient's size: round-off on
    # near-zero gradients (attention key biases, which softmax ignores) can shift a few elements
    # by a fraction of lr, while one rank's batches alone move them by ~lr
    off = [k for k in union if not torch.allclose(ranks[0][k], union[k], atol=1e-4, rtol=0)]
    assert [k for k in off if not k.endswith("to_k.bias")] == []
    assert any(not torch.allclose(start[k], union[k], atol=1e-4, rtol=0) for k in start)

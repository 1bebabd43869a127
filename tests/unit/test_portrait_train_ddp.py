"""The MCDM trainer under two processes (gloo, as `accelerate launch --cpu --num_processes 2`) trains ONE model
through the accelerate-wrapped module: both ranks end with the same UNet and adapter weights, and those are the
weights one process reaches stepping on the mean of the two ranks' losses (equal batch sizes, so the mean is the
loss of the union of their batches)."""
import torch

from pipelines.portrait_edit import train
from tests.unit.ddp_helpers import portrait_train_rank, run_processes
from tests.unit.test_portrait_train import _stub_encoders, tiny_mcdm, write_pair_folder

STEPS, LR, BATCH = 2, 1e-3, 2


def union_steps(model, data_dir) -> dict:
    """One process on both ranks' batches: each rank's pairs, drops and noise drawn from that rank's streams."""
    from diffusers import DDPMScheduler

    encoders, scheduler = _stub_encoders(), DDPMScheduler(num_train_timesteps=1000)
    records = train.read_records(str(data_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    streams = [train.rank_streams(0, 0, rank, "cpu") for rank in (0, 1)]
    for _ in range(STEPS):
        losses = [train.mcdm_loss(model, scheduler, *train.draw_batch(encoders, records, str(data_dir), rng, BATCH,
                                                                      "cpu"), generator=noise)
                  for rng, noise in streams]
        optimizer.zero_grad()
        (sum(losses) / len(losses)).backward()
        optimizer.step()
    return model.state_dict()


def differing(a: dict, b: dict, atol: float) -> list:
    return [k for k in a if not torch.allclose(a[k], b[k], atol=atol, rtol=0)]


def test_two_processes_train_one_mcdm_on_the_union_of_their_batches(tmp_path, one_thread):
    data_dir = write_pair_folder(tmp_path / "data")
    start = tiny_mcdm()
    torch.save(start.state_dict(), tmp_path / "start.pt")
    moved = {k: v.clone() for k, v in start.state_dict().items()}

    run_processes(portrait_train_rank, tmp_path / "start.pt", data_dir, STEPS, LR, BATCH, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    union = union_steps(start, data_dir)

    assert differing(ranks[0], ranks[1], atol=0) == []
    assert any(k.startswith("adapter.") for k in ranks[0]) and any(k.startswith("unet.") for k in ranks[0])
    # AdamW moves each weight by ~lr per step whatever its gradient's size, so round-off in near-zero
    # gradients can move a few elements by a fraction of lr; one rank's batches alone move them by ~lr
    assert differing(ranks[0], union, atol=1e-4) == []
    assert differing(moved, union, atol=1e-4) != []
    # the zero-initialised new conv_in channels learn, i.e. E(x_A) reaches the UNet
    assert union["unet.conv_in.weight"][:, 4:].abs().max() > 1e-4

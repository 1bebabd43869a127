"""Two CPU processes joined by gloo, set up as ``accelerate launch --cpu --num_processes 2``
sets them up (the env variables accelerate reads), for checks that several processes
train ONE model: same weights on every rank, equal to one process on the union of the batches.

The per-rank functions live here (not in test files) so that spawned processes can import them."""
import os
import socket
import sys
from pathlib import Path

import torch

REPO = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == world, "accelerate did not join the two processes"
    try:
        fn(accelerator, *args)
    finally:
        torch.distributed.destroy_process_group()


def run_processes(fn, *args, world: int = 2) -> None:
    """``fn(accelerator, *args)`` in ``world`` processes; raises if any of them fails."""
    import torch.multiprocessing as mp

    # Children start with this process's sys.path; the pack's root goes first so that ``tests`` is this
    # repo's package even after another test put a ComfyUI tree (which has its own tests/) in front.
    saved = list(sys.path)
    sys.path.insert(0, REPO)
    try:
        mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)
    finally:
        sys.path[:] = saved


def half_of(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    share = batch.shape[0] // world
    return batch[rank * share:(rank + 1) * share]


def aligntok_rank(accelerator, start_path, batches_path, settings, out_dir) -> None:
    """One rank of an AlignTok stage: its share of every batch; writes its weights."""
    from pipelines.aligntok.model import AlignTok
    from pipelines.aligntok.train import train_stage
    from tests.fixtures.build_aligntok import tiny_config

    model = AlignTok(tiny_config())
    model.load_state_dict(torch.load(start_path, weights_only=True))
    rank, world = accelerator.process_index, accelerator.num_processes
    batches = iter([half_of(b, rank, world) for b in torch.load(batches_path, weights_only=True)])
    trained = train_stage(model, batches, settings, accelerator=accelerator)
    torch.save({"model": trained.state_dict(), "disc": trained.discriminator_state}, f"{out_dir}/rank{rank}.pt")


def selfie_finetune_rank(accelerator, steps, lr, batch_size, out_dir) -> None:
    """One rank of the per-capture fine-tune on the tiny pipe; writes its UNet."""
    from pipelines.selfie_finetune.train import finetune_unet
    from tests.unit.test_selfie_finetune import make_capture, tiny_pipe

    pipe = tiny_pipe()
    finetune_unet(pipe.unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, make_capture(), steps=steps, lr=lr,
                  batch_size=batch_size, accelerator=accelerator)
    torch.save(pipe.unet.state_dict(), f"{out_dir}/rank{accelerator.process_index}.pt")


def portrait_train_rank(accelerator, start_path, data_dir, steps, lr, batch_size, out_dir) -> None:
    """One rank of the MCDM trainer on the tiny UNet with stand-in encoders; writes its weights."""
    from diffusers import DDPMScheduler

    from pipelines.portrait_edit.train import train
    from tests.unit.test_portrait_train import _stub_encoders, tiny_mcdm

    model = tiny_mcdm()
    model.load_state_dict(torch.load(start_path, weights_only=True))
    train(model, _stub_encoders(), DDPMScheduler(num_train_timesteps=1000), str(data_dir), f"{out_dir}/ckpt", steps,
          lr, batch_size, save_every=steps, accelerator=accelerator)
    torch.save(model.state_dict(), f"{out_dir}/rank{accelerator.process_index}.pt")

"""AlignTok's three stages at toy scale on CPU, read beside the thesis' Fig. 7.3 / Tab. 7.1,
with an equal-steps control for stage 3.

Per seed (3 by default; a seed draws the data, the tokenizer's initialisation, the
pretraining and every stage's batches) it prints, as ``<name>_seed<s>``, ``<name>_mean``
and ``<name>_min`` over the seeds:
  sp_probe_gain              linear-probe accuracy after stage 2 with L_sp minus without it
                             (both from the same stage-1 model, on the same batches);
  stage3_psnr_gain_db        test PSNR after stage 3 (decoder only, --stage3-steps steps)
                             minus after stage 2 (with L_sp);
  control_psnr_gain_db       test PSNR after stage 2 resumed for the same --stage3-steps
                             steps (its own weights, Adam and EMA state and stage-1 reference,
                             from the training-state file; on stage 3's batches) minus after stage 2;
  stage3_vs_control_psnr_db  stage 3 minus the control: what stage 3 adds beyond training
                             as many more steps of stage 2.
``stage3_beats_control_seeds`` counts the seeds where that last figure is positive; the
probe accuracies and PSNRs themselves are printed as means over the seeds
(``probe_acc_control``: the control may move the latent, stage 3 cannot). ``bench_seconds``
is wall time, ``bench_cpu_seconds`` the CPU time of this process and its workers
(``--jobs``).

Data: procedural 48x48 images of 4 classes (``patterns``): stripe orientation
(0/45/90/135 deg) with random period, phase, two random colours and a random occluding
disc; the class is the orientation, colours, phase and the disc are nuisances that a
pixel-faithful latent must also carry. A tiny DINOv2-layout ViT (patch 14, read at
42x42 -> 3x3 tokens = f16) is first pretrained to classify them (our stand-in for DINOv2's
pretraining), then the stages run on unlabelled images with the pack's own train_stage.
Linear probe (pipelines.aligntok.probe): frozen encoder + adapter, logistic regression on
the flattened 3x3x8 latent, fit on 600 training images, scored on 300 test images; PSNR on
the same 300.

Toy-scale choices, not the thesis': GAN off (w_g = 0); perceptual term = the pack's
frozen-encoder feature distance with w_p = 0.1; lr 1e-3 in stages 1 and 3 (thesis 1e-4)
and 5e-4 in stage 2 and the control (thesis 1e-5), so that the encoder moves within a
CPU budget; EMA decay 0.9; by default 60 steps per stage at batch 16 and 300 pretraining
steps.
There is no public AlignTok code to run beside it: the reference is the thesis' Tab. 7.1.

    .venv/bin/python bench/aligntok_small.py [--steps N] [--stage3-steps M] [--seeds 0 1 2] [--jobs J]
"""
import copy
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.aligntok.model import AlignTok, AlignTokConfig  # noqa: E402
from pipelines.aligntok.probe import linear_probe_accuracy  # noqa: E402
from pipelines.aligntok.train import StageSettings, train_stage  # noqa: E402

SIZE, CLASSES = 48, 4
PRETRAIN_STEPS, STAGE_STEPS, STAGE3_STEPS, BATCH = 300, 60, 60, 16
SEEDS = (0, 1, 2)


def patterns(n: int, seed: int):
    """n images [n,3,48,48] and labels: 4 stripe orientations (0, 45, 90, 135 degrees) with
    random period, phase, two random colours and a random-colour disc occluding part of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    images, labels = np.zeros((n, 3, SIZE, SIZE), np.float32), rng.integers(0, CLASSES, n)
    for i, label in enumerate(labels):
        angle = np.pi * label / CLASSES + rng.normal(0, 0.08)
        period, phase = rng.uniform(5, 10), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase) > 0
        a, c = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        while np.abs(a - c).sum() < 0.5:
            c = rng.uniform(0, 1, 3)
        img = np.where(wave, a[:, None, None], c[:, None, None])
        cx, cy, r = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(6, 14)]
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        images[i] = np.where(disc, rng.uniform(0, 1, 3)[:, None, None], img)
    return torch.from_numpy(images), labels


def config():
    return AlignTokConfig(encoder={"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                                   "patch_size": 14, "image_size": 42, "intermediate_size": 128},
                          latent_dim=8, adapter_hidden=64, decoder_channels=(8, 8, 16, 16, 32),
                          decoder_layers=1, norm_groups=4)


def pretrain_encoder(model: AlignTok, images, labels, steps: int = PRETRAIN_STEPS):
    """Supervised pretraining of the ViT (our stand-in for DINOv2's self-supervision)."""
    head = torch.nn.Linear(model.config.encoder["hidden_size"], CLASSES)
    opt = torch.optim.AdamW(list(model.encoder.parameters()) + list(head.parameters()), lr=5e-4)
    y = torch.from_numpy(labels)
    for step in range(steps):
        idx = torch.randint(len(images), (BATCH,))
        feats = model.encoder_features(images[idx]).mean((2, 3))
        loss = F.cross_entropy(head(feats), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


def batches(images, seed):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield images[torch.randint(len(images), (BATCH,), generator=g)]


def psnr(model, images) -> float:
    with torch.no_grad():
        mse = F.mse_loss(model(images), images).item()
    return 10 * np.log10(1.0 / max(mse, 1e-10))


def toy_settings(stage: int, steps: int, lr: float, seed: int, **kw) -> StageSettings:
    return StageSettings(stage, steps, lr, batch_size=BATCH, w_perceptual=0.1, gan_start=10**9, w_gan=0.0,
                         ema_decay=0.9, seed=seed, **kw)


def run_seed(seed: int, steps: int, stage3_steps: int, pretrain_steps: int, workdir: Path) -> dict:
    """Every figure of one seed (model init, data, batches, pretraining all drawn from it)."""
    torch.manual_seed(seed)
    train_x, train_y = patterns(1200, 2 * seed)
    test_x, test_y = patterns(300, 2 * seed + 1)
    model = AlignTok(config())

    def probe(m):
        return linear_probe_accuracy(m, train_x[:600], train_y[:600], test_x, test_y)

    start = time.time()

    def log(what):
        print(f"# seed {seed}: {what} ({time.time() - start:.0f} s)", flush=True)

    acc0 = probe(model)
    head = pretrain_encoder(model, train_x, train_y, pretrain_steps)
    with torch.no_grad():
        pre_acc = float((head(model.encoder_features(test_x).mean((2, 3))).argmax(1).numpy() == test_y).mean())
    log("pretrained")
    s1 = train_stage(model, batches(train_x, 10 * seed + 1), toy_settings(1, steps, 1e-3, seed))
    log("stage 1")
    # the L_sp run leaves its full training state (weights, Adam, EMA, stage-1 reference) in
    # this file, so that the control below goes on exactly where it stopped
    stage2_state = workdir / f"stage2_seed{seed}.pt"
    s2 = {"sp": train_stage(copy.deepcopy(s1), batches(train_x, 10 * seed + 2),
                            toy_settings(2, steps, 5e-4, seed, w_sp=1.0), checkpoint=stage2_state),
          "nosp": train_stage(copy.deepcopy(s1), batches(train_x, 10 * seed + 2),
                              toy_settings(2, steps, 5e-4, seed, w_sp=0.0))}
    log("stage 2 with and without L_sp")
    s3 = train_stage(copy.deepcopy(s2["sp"]), batches(train_x, 10 * seed + 3), toy_settings(3, stage3_steps, 1e-3, seed))
    log("stage 3")
    # equal-steps control: stage 2 (with L_sp) resumed for stage 3's step count, on stage 3's batches
    control = train_stage(copy.deepcopy(s1), batches(train_x, 10 * seed + 3),
                          toy_settings(2, steps + stage3_steps, 5e-4, seed, w_sp=1.0), checkpoint=stage2_state)
    log("control: stage 2 continued")
    r = {"pretrained_encoder_test_acc": pre_acc, "probe_acc_random_init": acc0, "probe_acc_stage1": probe(s1),
         "probe_acc_stage2_sp": probe(s2["sp"]), "probe_acc_stage2_nosp": probe(s2["nosp"]),
         "probe_acc_stage3": probe(s3), "probe_acc_control": probe(control),
         "psnr_stage1": psnr(s1, test_x), "psnr_stage2": psnr(s2["sp"], test_x),
         "psnr_stage2_nosp": psnr(s2["nosp"], test_x), "psnr_stage3": psnr(s3, test_x),
         "psnr_control": psnr(control, test_x)}
    r["sp_probe_gain"] = r["probe_acc_stage2_sp"] - r["probe_acc_stage2_nosp"]
    r["stage3_psnr_gain_db"] = r["psnr_stage3"] - r["psnr_stage2"]
    r["control_psnr_gain_db"] = r["psnr_control"] - r["psnr_stage2"]
    r["stage3_vs_control_psnr_db"] = r["psnr_stage3"] - r["psnr_control"]
    return r


def run_seeds(job, seeds, jobs: int) -> dict:
    if jobs == 1:
        return {s: job(s) for s in seeds}
    # one thread per process: the seeds, not the tiny tensors, are what parallelises
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return dict(zip(seeds, pool.map(job, seeds)))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


GAINS = ("sp_probe_gain", "stage3_psnr_gain_db", "control_psnr_gain_db", "stage3_vs_control_psnr_db")


def main():
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=STAGE_STEPS, help="training steps of stages 1 and 2")
    parser.add_argument("--stage3-steps", type=int, default=STAGE3_STEPS,
                        help="training steps of stage 3, and of the control's stage-2 continuation")
    parser.add_argument("--pretrain-steps", type=int, default=PRETRAIN_STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run in this many processes of one thread each (1: in this process, 2 threads)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start, cpu_start = time.time(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="aligntok_small_") as workdir:
        job = partial(run_seed, steps=args.steps, stage3_steps=args.stage3_steps, pretrain_steps=args.pretrain_steps,
                      workdir=Path(workdir))
        runs = run_seeds(job, args.seeds, args.jobs)
    print(f"bench_seconds: {time.time() - start:.0f}")
    print(f"bench_cpu_seconds: {cpu_seconds() - cpu_start:.0f}")
    print(f"seeds: {len(runs)}")
    print(f"chance_acc: {1 / CLASSES:.3f}")
    for k in runs[args.seeds[0]]:
        if k not in GAINS:
            print(f"{k}_mean: {np.mean([r[k] for r in runs.values()]):.3f}")
    for k in GAINS:
        for s, r in runs.items():
            print(f"{k}_seed{s}: {r[k]:.3f}")
        values = [r[k] for r in runs.values()]
        print(f"{k}_mean: {np.mean(values):.3f}\n{k}_min: {min(values):.3f}")
    print(f"stage3_beats_control_seeds: {sum(r['stage3_vs_control_psnr_db'] > 0 for r in runs.values())}")
    # the thesis' Tab. 7.1 (ImageNet, d = 32), for side-by-side reading
    print("thesis_probe_acc_stage1: 0.415\nthesis_probe_acc_stage2_sp: 0.351\nthesis_probe_acc_stage2_nosp: 0.095")
    print("thesis_psnr_stage2: 25.62\nthesis_psnr_stage3: 25.83")


if __name__ == "__main__":
    main()

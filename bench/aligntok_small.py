"""The AlignTok claim at small scale, on CPU (thesis Fig. 7.3 / Tab. 7.1):
stage 2 without L_sp loses latent semantics, with L_sp keeps them; stage 3 improves
reconstruction.

Data: procedural 48x48 images of 4 classes: stripe orientation (0/45/90/135 deg) with random
period, phase, two random colours and a random occluding disc (``patterns``; ``shapes`` is
kept as a harder alternative): the class is the orientation, colours, phase and the disc
are nuisances that a pixel-faithful latent must also carry. A tiny
DINOv2-layout ViT (patch 14, read at 42x42 -> 3x3 tokens = f16) is first pretrained to
classify them (our stand-in for DINOv2's pretraining), then the three stages run on
unlabelled images with the pack's own train_stage. Linear probe (pipelines.aligntok.probe):
frozen encoder + adapter, logistic regression on the flattened 3x3x8 latent, fit on 600
images, scored on 300 others; PSNR on the same 300.

Toy-scale choices, not the thesis': GAN off (w_g = 0); perceptual term = the pack's
frozen-encoder feature distance with w_p = 0.1; stage-2 lr 5e-4 (thesis 1e-5) so the
encoder moves within a CPU budget, the same for both stage-2 variants; EMA decay 0.9.
Stage 2 with and without L_sp start from the same stage-1 model and see the same batches.
There is no public AlignTok code to run beside it: the reference is the thesis' Tab. 7.1.

    .venv/bin/python bench/aligntok_small.py [--steps N]
"""
import copy
import sys
import time
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


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=STAGE_STEPS, help="training steps per stage")
    parser.add_argument("--pretrain-steps", type=int, default=PRETRAIN_STEPS)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.manual_seed(0)
    start = time.time()
    train_x, train_y = patterns(1200, 0)
    test_x, test_y = patterns(300, 1)
    model = AlignTok(config())

    def probe(m):
        return linear_probe_accuracy(m, train_x[:600], train_y[:600], test_x, test_y)

    acc0 = probe(model)
    head = pretrain_encoder(model, train_x, train_y, args.pretrain_steps)
    with torch.no_grad():
        pre_acc = float((head(model.encoder_features(test_x).mean((2, 3))).argmax(1).numpy() == test_y).mean())
    print(f"# pretrained ({time.time() - start:.0f} s)", flush=True)
    common = dict(batch_size=BATCH, w_perceptual=0.1, gan_start=10**9, w_gan=0.0, ema_decay=0.9)
    s1 = train_stage(model, batches(train_x, 1), StageSettings(1, args.steps, 1e-3, **common))
    acc1 = probe(s1)
    print(f"# stage 1 ({time.time() - start:.0f} s)", flush=True)
    s2 = {}
    for name, w_sp in (("sp", 1.0), ("nosp", 0.0)):
        s2[name] = train_stage(copy.deepcopy(s1), batches(train_x, 2),
                               StageSettings(2, args.steps, 5e-4, w_sp=w_sp, **common))
        print(f"# stage 2 {name} ({time.time() - start:.0f} s)", flush=True)
    s3 = train_stage(copy.deepcopy(s2["sp"]), batches(train_x, 3), StageSettings(3, args.steps, 1e-3, **common))
    r = {"pretrained_encoder_test_acc": pre_acc, "probe_acc_random_init": acc0, "probe_acc_stage1": acc1, "probe_acc_stage2_sp": probe(s2["sp"]),
         "probe_acc_stage2_nosp": probe(s2["nosp"]), "probe_acc_stage3": probe(s3),
         "psnr_stage1": psnr(s1, test_x), "psnr_stage2": psnr(s2["sp"], test_x),
         "psnr_stage2_nosp": psnr(s2["nosp"], test_x), "psnr_stage3": psnr(s3, test_x)}
    r["sp_probe_gain"] = r["probe_acc_stage2_sp"] - r["probe_acc_stage2_nosp"]
    r["stage3_psnr_gain_db"] = r["psnr_stage3"] - r["psnr_stage2"]
    print(f"bench_seconds: {time.time() - start:.0f}")
    print(f"chance_acc: {1 / CLASSES:.3f}")
    for k, v in r.items():
        print(f"{k}: {v:.3f}")
    # the thesis' Tab. 7.1 (ImageNet, d = 32), for side-by-side reading
    print("thesis_probe_acc_stage1: 0.415\nthesis_probe_acc_stage2_sp: 0.351\nthesis_probe_acc_stage2_nosp: 0.095")
    print("thesis_psnr_stage2: 25.62\nthesis_psnr_stage3: 25.83")


if __name__ == "__main__":
    main()

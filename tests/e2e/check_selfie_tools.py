"""selfie_tools: ranking puts the photo with a person first, pose + parts are drawn, the
FFHQ-aligned face is undistorted and pasted back only around the face, the x1.1 box mask holds the person."""
import numpy as np
from PIL import Image

RANKED, POSE, PARTS, ALIGNED, PASTED, BOX = 6, 8, 9, 13, 14, 17


def _load(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def check(comfy, entry):
    selfie = _load(comfy.base / "input" / "recompose_astronaut.jpg")

    ranked = [_load(p) for p in comfy.output_files(entry, RANKED)]
    assert len(ranked) == 2 and all(r.shape == (512, 512, 3) for r in ranked)
    assert np.abs(ranked[0] - selfie).max() <= 1, "the photo with a person (the astronaut) should rank first"

    pose = _load(comfy.output_files(entry, POSE)[0])
    assert pose.shape == (512, 512, 3) and (pose.sum(-1) > 0).mean() > 0.005, "no skeleton drawn"
    parts = _load(comfy.output_files(entry, PARTS)[0])
    colours = {tuple(c) for c in parts.reshape(-1, 3)[::97]}
    assert (128, 0, 0) in colours and (0, 128, 0) in colours, "head and upper-body parts expected"

    aligned = _load(comfy.output_files(entry, ALIGNED)[0])
    assert aligned.shape == (256, 256, 3)

    pasted = _load(comfy.output_files(entry, PASTED)[0])
    assert pasted.shape == selfie.shape
    face = np.abs(pasted[100:180, 190:260] - selfie[100:180, 190:260])
    assert face.mean() > 1.0, "the undistorted face was not pasted back"
    far = np.abs(pasted[:60, 420:] - selfie[:60, 420:])
    assert far.max() <= 1, "pixels far from the face changed"
    assert np.isfinite(pasted).all()

    box = _load(comfy.output_files(entry, BOX)[0])[..., 0] > 127
    ys, xs = np.nonzero(box)
    assert box.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1), "the box mask is not a filled rectangle"
    person = parts.sum(-1) > 0
    assert (box | ~person).all(), "the box must contain the whole person"
    assert 0.3 < box.mean() < 1.0

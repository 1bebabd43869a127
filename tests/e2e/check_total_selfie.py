"""workflows/total_selfie.json: four selfies + china background -> face undistorted by the learned
corrector (mode 'auto' with the tiny official-layout 00000196-checkpoint.pth.tar present), ranked reference,
x1.1 box mask, Canny control -> pass 1 candidates -> per-capture fine-tune -> Selfie Inpaint with the
fine-tuned tiny official-layout pbe_selfie2full + ControlNet -> head refined by core KSampler on the tiny
SD1.5 checkpoint and pasted back."""
import numpy as np
from PIL import Image

RESULT, CONTROL, MASK, UNREFINED = 32, 33, 35, 37


def _load(path, mode="RGB"):
    return np.asarray(Image.open(path).convert(mode), dtype=np.float32) / 255.0


def _texts(entry):
    return "\n".join(str(t) for out in entry.get("outputs", {}).values() for t in out.get("text", []) or [])


def check(comfy, entry):
    result = [_load(p) for p in comfy.output_files(entry, RESULT)]
    assert len(result) == 1 and result[0].shape == (256, 256, 3)
    assert np.isfinite(result[0]).all() and result[0].std() > 1e-3, "the inpainted image is flat"

    edges = _load(comfy.output_files(entry, CONTROL)[0], "L")
    assert edges.shape == (256, 256) and 0.001 < (edges > 0.5).mean() < 0.5, "no Canny edges of the part map"

    box = _load(comfy.output_files(entry, MASK)[0], "L") > 0.5
    ys, xs = np.nonzero(box)
    assert box.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1), "the inpainting mask is not a filled box"
    assert 0.05 < box.mean() < 1.0
    # the person's edges lie inside the x1.1 box
    assert (edges[~box] > 0.5).mean() < 0.01

    # refinement changed one head-sized patch only (crop -> KSampler -> paste back); the reference here is a
    # portrait, so its head box with the crop's 1.5x context spans about a quarter of the image
    changed = np.abs(result[0] - _load(comfy.output_files(entry, UNREFINED)[0])).max(-1) > 2 / 255
    ys, xs = np.nonzero(changed)
    assert len(ys), "the refinement changed nothing"
    assert (np.ptp(ys) + 1) * (np.ptp(xs) + 1) < 0.35 * changed.size, "the refinement touched more than the head"

    tuned = comfy.base / "models" / "recompose" / "selfie" / "total_selfie_capture.safetensors"
    assert tuned.exists() and tuned.stat().st_size > 100_000, "the per-capture fine-tune was not saved"

    log = _texts(entry)
    assert "mode auto: ran the learned corrector" in log and "facevid2vid" in log, log
    assert "trained Total Selfie encoder" in log and "1 token" in log, log
    assert "ControlNet fed the selfie embedding, scale 1.0" in log, log
    assert "eq. 3.4" in log and "dilated 21 px" in log and "person mask given" in log, log

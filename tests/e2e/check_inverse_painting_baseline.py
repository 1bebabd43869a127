"""workflows/inverse_painting_baseline.json: a real time-lapse from a white canvas towards
china.png, saved as frames, an animated WEBP and a time map."""
import numpy as np
from PIL import Image

from scripts.harness.examples import EXAMPLES


def _load(path, size=None):
    img = Image.open(path).convert("RGB")
    return np.asarray(img.resize(size) if size else img, dtype=np.float32) / 255.0


def check(comfy, entry):
    files = comfy.output_files(entry)
    frames = sorted(f for f in files if f.name.startswith("painting_baseline_0"))
    (webp,) = [f for f in files if f.suffix == ".webp"]
    (timemap,) = [f for f in files if f.name.startswith("painting_baseline_timemap")]
    assert len(frames) > 3
    target_img = Image.fromarray(EXAMPLES["recompose_china.jpg"]())
    first = _load(frames[0])
    size = (first.shape[1], first.shape[0])
    target = np.asarray(target_img.resize(size), dtype=np.float32) / 255.0
    assert first.min() > 0.95, "the time-lapse starts from a white canvas"
    errors = [np.abs(_load(f) - target).mean() for f in frames]
    assert errors[-1] < 0.5 * errors[0], errors
    assert errors[-1] == min(errors) or errors[-1] < errors[len(errors) // 2], errors
    with Image.open(webp) as im:
        assert getattr(im, "n_frames", 1) > 3
    assert _load(timemap).std() > 0.01  # different regions were painted at different times
    texts = [t for out in entry["outputs"].values() for t in out.get("text", [])]
    assert any("baseline" in t for t in texts), texts

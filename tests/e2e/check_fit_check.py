"""workflows/fit_check.json: tiny SVD + MimicMotion weights, 5 retrieved poses at 64x64 in two fused
tiles -> an animated WEBP and 5 frames (references dropped), and the mode line."""
import numpy as np
from PIL import Image

FRAMES = 5
SIZE = (64, 64)


def check(comfy, entry):
    files = comfy.output_files(entry)
    frames = sorted(f for f in files if f.name.startswith("fit_check_frame"))
    webps = [f for f in files if f.suffix == ".webp"]
    assert len(frames) == FRAMES, [f.name for f in files]  # one per pose: the two references are dropped
    pixels = []
    for path in frames:
        with Image.open(path) as im:
            assert im.size == SIZE
            pixels.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    assert max(np.abs(a - b).max() for a, b in zip(pixels, pixels[1:])) > 0, "all frames are identical"
    (webp,) = webps
    with Image.open(webp) as im:
        assert im.size == SIZE
        assert 1 < getattr(im, "n_frames", 1) <= FRAMES
    texts = [t for out in entry["outputs"].values() for t in out.get("text", [])]
    mode = next(t for t in texts if "mode (" in t)
    assert mode.startswith("MimicMotion mode (8-channel UNet)"), mode
    assert "background unused" in mode and "multi-reference attention on" in mode, mode
    assert f"{FRAMES} frames at 64x64, 2 tile(s), 3 steps" in mode, mode

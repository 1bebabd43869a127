"""workflows/aligntok_roundtrip.json with the tiny tokenizer: a 256x256 image comes back
256x256 through a 16x16 latent (decoded in 8x8-cell tiles), finite and not constant."""
import numpy as np
from PIL import Image


def check(comfy, entry):
    (path,) = comfy.output_files(entry)
    out = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert out.shape == (256, 256, 3)
    assert np.isfinite(out).all() and out.std() > 0.5

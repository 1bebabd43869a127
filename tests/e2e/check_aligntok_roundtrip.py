"""workflows/aligntok_roundtrip.json with the tiny tokenizer: a 256x256 image comes back
256x256 through a 16x16 latent (decoded in 8x8-cell tiles), and equals what the same
tokenizer gives in this process on the same input (the workflow's resize, encode, tiled
decode and 8-bit save, done here by hand)."""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tests.fixtures import build_aligntok as fixture


def in_process(comfy) -> np.ndarray:
    from pipelines.aligntok.model import load_tokenizer
    from pipelines.aligntok.tiling import tiled_decode

    model = load_tokenizer(comfy.base / "models" / "recompose" / "aligntok" / fixture.TINY_NAME)
    photo = np.asarray(Image.open(comfy.base / "input" / "recompose_astronaut.jpg").convert("RGB"), np.float32) / 255
    x = torch.from_numpy(photo).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(256, 256), mode="bicubic")  # ImageScale 'bicubic', crop disabled
    with torch.no_grad():
        out = tiled_decode(model, model.encode(x), 8, 2)
    return np.clip(out[0].permute(1, 2, 0).numpy() * 255.0, 0, 255).astype(np.uint8)  # as SaveImage writes


def check(comfy, entry):
    (path,) = comfy.output_files(entry)
    out = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert out.shape == (256, 256, 3)
    assert np.isfinite(out).all() and out.std() > 0.5
    want = in_process(comfy).astype(np.float32)
    # thread counts differ between the server and this process: a few 8-bit roundings may flip
    assert np.abs(out - want).max() <= 2 and np.abs(out - want).mean() < 0.1

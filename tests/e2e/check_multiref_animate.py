"""multiref_animate with the tiny SD1.5 checkpoint: 2 references + 4 frames are sampled as one
batch and the references dropped, so 4 finite, non-constant 64x64 frames are saved (PNGs and an
animated WEBP holding the same frames). Re-running with another back selfie changes the frames:
an SD UNet processes batch items independently, so only the patch lets frames see the references."""
import copy

import numpy as np
from PIL import Image

BACK_IMAGE, WEBP, FRAMES = 4, 22, 23
FRAME_COUNT, SIZE = 4, 64
OTHER_BACK = "recompose_chelsea.jpg"


def _frames(comfy, entry):
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
                     for p in comfy.output_files(entry, FRAMES)])


def _rerun_with_back(comfy, entry, back):
    prompt = copy.deepcopy(entry["prompt"][2])
    prompt[str(BACK_IMAGE)]["inputs"]["image"] = back
    return _frames(comfy, comfy.run(prompt, timeout=600))


def _differ(a, b):
    return np.abs(a - b).mean() > 1.0


def check(comfy, entry):
    frames = _frames(comfy, entry)
    assert frames.shape == (FRAME_COUNT, SIZE, SIZE, 3), frames.shape
    for frame in frames:
        assert frame.std() > 5, "a constant frame (NaN latents decode to black)"
    assert _differ(frames[0], frames[1]), "every frame has its own noise, so the frames should differ"

    (webp,) = comfy.output_files(entry, WEBP)
    with Image.open(webp) as im:
        assert im.size == (SIZE, SIZE) and im.n_frames == FRAME_COUNT
        for index in range(FRAME_COUNT):
            im.seek(index)
            assert np.array_equal(np.asarray(im.convert("RGB"), dtype=np.int16), frames[index])  # lossless

    assert _differ(_rerun_with_back(comfy, entry, OTHER_BACK), frames), "the frames ignore the back reference"

"""workflows/portrait_pairs.json on the tiny SD1.5 checkpoint and OpenPose ControlNet: a 128x64 canvas is denoised
once and split into a 64x64 pair (x_A, x_B) that are its two halves; the halves differ (different prompts on each
side), and switching the ControlNet off changes the pair (the pose reaches the guider's branches)."""
import copy

import numpy as np

from .workflows import saved_image

CONTROL_SHARED, CONTROL_SIDES, CANVAS, CONDITION, GT = 9, 10, 19, 20, 21
SIZE = 64


def check(comfy, entry):
    canvas, x_a, x_b = (saved_image(comfy, entry, node) for node in (CANVAS, CONDITION, GT))
    assert canvas.shape == (SIZE, 2 * SIZE, 3) and x_a.shape == x_b.shape == (SIZE, SIZE, 3)
    assert np.array_equal(canvas[:, :SIZE], x_a) and np.array_equal(canvas[:, SIZE:], x_b)
    assert x_a.std() > 0.01 and x_b.std() > 0.01
    assert np.abs(x_a - x_b).mean() > 1e-3
    texts = [t for out in entry.get("outputs", {}).values() for t in out.get("text", []) or []]
    assert "a woman, Santa Claus costume" in " ".join(map(str, texts)), texts

    prompt = copy.deepcopy(entry["prompt"][2])
    for node in (CONTROL_SHARED, CONTROL_SIDES):
        assert prompt[str(node)]["class_type"] == "ControlNetApplyAdvanced"
        prompt[str(node)]["inputs"]["strength"] = 0.0
    other = comfy.run(prompt, timeout=600)
    assert np.abs(saved_image(comfy, other, CANVAS) - canvas).mean() > 1e-3

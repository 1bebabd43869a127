"""workflows/portrait_edit.json with tiny official-layout MCDM weights: the edited 64x64 portrait, the binary
editing mask and its soft map are saved, the mask is the soft map thresholded at lambda = 0.2, and another
target prompt changes the result and the soft map (the text reaches the mask and the guider through core's
conditioning path). Random weights differ everywhere, so the binary mask itself may cover the whole image."""
import copy

import numpy as np

from .workflows import saved_image

TARGET_PROMPT, EDITED, MASK, SOFT = 6, 17, 19, 21
THRESHOLD = 0.2
SIZE = 64


def check(comfy, entry):
    edited, mask, soft = (saved_image(comfy, entry, node) for node in (EDITED, MASK, SOFT))
    assert edited.shape == mask.shape == soft.shape == (SIZE, SIZE, 3)
    assert np.isfinite(edited).all() and edited.std() > 0.01
    assert set(np.unique(mask)) <= {0.0, 1.0}, "the editing mask is thresholded"
    assert soft.std() > 0.01 and 0.0 <= soft.min() and soft.max() <= 1.0
    clear = np.abs(soft - THRESHOLD) > 1 / 255  # PNG quantisation
    assert np.array_equal(mask[clear] > 0.5, soft[clear] > THRESHOLD)

    prompt = copy.deepcopy(entry["prompt"][2])
    assert prompt[str(TARGET_PROMPT)]["class_type"] == "CLIPTextEncode"
    prompt[str(TARGET_PROMPT)]["inputs"]["text"] = "a woman, traditional golden palace costume"
    other = comfy.run(prompt, timeout=600)
    assert np.abs(saved_image(comfy, other, EDITED) - edited).mean() > 1e-3
    assert np.abs(saved_image(comfy, other, SOFT) - soft).mean() > 1e-3

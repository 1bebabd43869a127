"""workflows/diffedit_native.json on the tiny SD1.5 checkpoint: the mask is its soft map thresholded, and the
edit changes the image inside the mask while the official latent form keeps it (up to the VAE round trip of the
source) outside. Random weights give no meaningful soft map, so the check re-runs with the threshold at the
map's median, which splits the image into an edited and a kept half."""
import copy

import numpy as np

from .workflows import saved_image

MASK_NODE, EDITED, MASK, SOURCE, SOFT = 8, 15, 17, 19, 21
SIZE = 64


def check(comfy, entry):
    soft, mask = saved_image(comfy, entry, SOFT), saved_image(comfy, entry, MASK)
    assert soft.std() > 0.01
    clear = np.abs(soft - 0.2) > 1 / 255  # PNG quantisation
    assert np.array_equal(mask[clear] > 0.5, soft[clear] > 0.2)

    prompt = copy.deepcopy(entry["prompt"][2])
    assert prompt[str(MASK_NODE)]["class_type"] == "RecomposeEditingMask"
    prompt[str(MASK_NODE)]["inputs"]["threshold"] = float(np.median(soft[..., 0]))
    entry = comfy.run(prompt, timeout=600)
    edited, mask, source = (saved_image(comfy, entry, node) for node in (EDITED, MASK, SOURCE))
    assert edited.shape == mask.shape == source.shape == (SIZE, SIZE, 3)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    keep, edit = mask[..., 0] < 0.5, mask[..., 0] > 0.5
    assert keep.any() and edit.any(), f"mask covers {edit.mean():.2f} of the image"
    change = np.abs(edited - source).mean(axis=-1)
    # TAESD decodes each 8x8 latent cell with some context, so compare away from the mask border
    core_keep = keep & ~_grow(edit, 8)
    assert core_keep.any(), "the kept region is too thin to compare"
    assert change[edit].mean() > 2 * change[core_keep].mean(), (change[edit].mean(), change[core_keep].mean())


def _grow(mask, pixels):
    grown = mask.copy()
    for _ in range(pixels):
        grown[1:] |= grown[:-1]
        grown[:-1] |= grown[1:]
        grown[:, 1:] |= grown[:, :-1]
        grown[:, :-1] |= grown[:, 1:]
    return grown

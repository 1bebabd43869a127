"""workflows/inverse_painting.json: china -> learned renderer + RP mask generator (tiny official-layout
weights) + the offline instruction generator -> 3 updates -> keyframes, masks, time map, instructions, report."""
import re

import numpy as np
from PIL import Image

from scripts.harness.examples import EXAMPLES

# the names the offline generator gives regions (pipelines/inverse_painting/instructions.py), "sky 2" for repeats
REGION_NAME = r"(sky|trees|grass|water|mountains|background|foreground)( \d+)?"


def _texts(entry):
    texts = []
    for out in entry.get("outputs", {}).values():
        for item in out.get("text", []) or []:
            texts.append(item if isinstance(item, str) else str(item))
    return texts


def check(comfy, entry):
    source = np.asarray(EXAMPLES["recompose_china.jpg"](), dtype=np.float32) / 255.0
    files = comfy.output_files(entry)
    keyframes = sorted(f for f in files if f.name.startswith("inverse_painting_keyframe"))
    masks = sorted(f for f in files if f.name.startswith("inverse_painting_mask"))
    tmaps = [f for f in files if f.name.startswith("inverse_painting_time_map")]
    # blank canvas + 3 updates (the tiny random renderer never gets close enough to stop early)
    assert len(keyframes) == 4, [f.name for f in files]
    assert len(masks) == 3 and len(tmaps) == 1
    frames = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0 for f in keyframes]
    for fr in frames:
        assert fr.shape == source.shape, (fr.shape, source.shape)  # cropped back to the input's aspect ratio
        assert np.isfinite(fr).all()
    assert frames[0].min() > 0.99, "keyframe 0 must be the blank white canvas"
    assert np.abs(frames[1] - frames[0]).mean() > 1e-3, "the first update changed nothing"
    mask_arrays = [np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0 for f in masks]
    for m in mask_arrays:
        assert m.shape == source.shape[:2]
        assert set(np.unique(np.round(m, 3))) <= {0.0, 1.0}, "mask instructions are binary"
    tmap = np.asarray(Image.open(tmaps[0]).convert("L"), dtype=np.float32) / 255.0
    assert tmap.shape == source.shape[:2] and 0.0 <= tmap.min() and tmap.max() <= 1.0
    texts = "\n".join(_texts(entry))
    # the instructions come from the region generator (one named region per update), not the constant default
    used = dict(line.split(": ", 1) for line in texts.splitlines() if re.fullmatch(r"\d+s: .+", line))
    assert sorted(used) == ["20s", "40s", "60s"], texts
    assert "painting" not in used.values(), texts
    assert len(set(used.values())) == 3, f"every update should get its own region: {used}"
    assert all(re.fullmatch(REGION_NAME, v) for v in used.values()), used
    assert "instructions: offline heuristic instructions" in texts, texts
    assert "learned renderer" in texts and "learned mask generator" in texts, texts
    # the fixture's backbone in models/lpips: true LPIPS ran (stop rule, difference masks, the RP's M_d input)
    assert "distance: LPIPS (AlexNet backbone alexnet-random-test.pth)" in texts, texts
    assert "M_d from LPIPS" in texts and "alpha 0.2 -> 0.2," in texts, texts
    assert "updates: 3" in texts, texts

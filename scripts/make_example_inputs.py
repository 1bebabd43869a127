"""Writes example_inputs/: the small files the shipped workflows load, committed into the pack.

The pictures come from packages (public-domain / CC0 / CC BY images in scikit-image, matplotlib
and scikit-learn; example_inputs/SOURCES.md names each source and licence), re-encoded as JPEG to
keep the pack small. The IMU recording is made by the pack's own motion code. Run it only to
change the examples (it needs the dev requirements); users get the committed files.

    .venv/bin/python scripts/make_example_inputs.py
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "example_inputs"
JPEG_QUALITY = 90


def _skimage(name):
    from skimage import data

    return getattr(data, name)()


def _grace_hopper():
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _china():
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


def _imu_recording() -> str:
    """A simulated phone recording (joined CSV: quaternion + user acceleration) of clip 7 of the
    built-in motion database, re-timed and noisy like a real one: retrieval should find that clip."""
    from pipelines.motion.database import MotionDatabase
    from pipelines.motion.synthetic import phone_recording, recording_csv

    clip = MotionDatabase.synthetic(8).clips[7]
    return recording_csv(phone_recording(clip.trajectory, np.random.default_rng(7)))


MAKERS = {
    "recompose_astronaut.jpg": lambda: _skimage("astronaut"),
    "recompose_grace_hopper.jpg": _grace_hopper,
    "recompose_china.jpg": _china,
    "recompose_chelsea.jpg": lambda: _skimage("chelsea"),
    "recompose_coffee.jpg": lambda: _skimage("coffee"),
    "recompose_imu_walk.csv": _imu_recording,
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, make in MAKERS.items():
        made = make()
        if isinstance(made, str):
            (OUT / name).write_text(made)
        else:
            Image.fromarray(made).save(OUT / name, quality=JPEG_QUALITY)
        print(f"wrote {(OUT / name).relative_to(ROOT)} ({(OUT / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()

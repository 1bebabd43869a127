"""Example inputs the shipped workflows load by name, written into ComfyUI's input folder.

All come from packages (public-domain / CC images in scikit-image, matplotlib and
scikit-learn), so nothing is downloaded.
"""
from pathlib import Path

import numpy as np
from PIL import Image


def _astronaut():
    from skimage import data

    return data.astronaut()


def _grace_hopper():
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _china():
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


def _chelsea():
    from skimage import data

    return data.chelsea()


def _coffee():
    from skimage import data

    return data.coffee()


def _imu_recording():
    """A simulated phone recording (joined CSV: quaternion + user acceleration) of clip 7 of the
    built-in motion database, re-timed and noisy like a real one: retrieval should find that clip."""
    from pipelines.motion.database import MotionDatabase
    from pipelines.motion.synthetic import phone_recording, recording_csv

    clip = MotionDatabase.synthetic(8).clips[7]
    return recording_csv(phone_recording(clip.trajectory, np.random.default_rng(7)))


EXAMPLES = {
    "recompose_astronaut.png": _astronaut,
    "recompose_grace_hopper.png": _grace_hopper,
    "recompose_china.png": _china,
    "recompose_chelsea.png": _chelsea,
    "recompose_coffee.png": _coffee,
    "recompose_imu_walk.csv": _imu_recording,
}


def write_example_inputs(input_dir) -> list[Path]:
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in EXAMPLES.items():
        path = input_dir / name
        if not path.exists():
            made = make()
            if isinstance(made, str):
                path.write_text(made)
            else:
                Image.fromarray(made).save(path)
        written.append(path)
    return written

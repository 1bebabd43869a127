"""Example inputs the shipped workflows load by name: the files committed in example_inputs/
(made by scripts/make_example_inputs.py), which the pack itself copies into ComfyUI's input folder."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example_inputs"


def _reader(path: Path):
    if path.suffix == ".csv":
        return path.read_text
    return lambda: np.asarray(Image.open(path).convert("RGB"))


# name -> () -> the decoded picture (H, W, 3 uint8) or the text, as the workflows read it
EXAMPLES = {p.name: _reader(p) for p in sorted(EXAMPLE_DIR.glob("recompose_*"))}


def write_example_inputs(input_dir) -> list[Path]:
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXAMPLES:
        path = input_dir / name
        if not path.exists():
            shutil.copyfile(EXAMPLE_DIR / name, path)
        written.append(path)
    return written

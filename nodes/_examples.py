"""The templates' example inputs ship in example_inputs/ and are copied into ComfyUI's input
folder at load, so every template finds its pictures on first use."""
import logging
import shutil
from pathlib import Path

import folder_paths

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "example_inputs"
EXAMPLE_PATTERN = "recompose_*"


def install_example_inputs() -> list[str]:
    """Copies each example that is absent; a file (or link) of that name already there is the user's
    and is never replaced. Returns the names copied."""
    input_dir = Path(folder_paths.get_input_directory())
    copied = []
    for source in sorted(EXAMPLE_DIR.glob(EXAMPLE_PATTERN)):
        try:
            input_dir.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as src, open(input_dir / source.name, "xb") as dst:  # "x": never overwrite
                shutil.copyfileobj(src, dst)
            copied.append(source.name)
        except FileExistsError:
            continue
        except OSError as exc:  # a read-only input folder must not stop the nodes from loading
            logging.warning("Recompose: could not copy example input %s into %s: %s", source.name, input_dir, exc)
    return copied

"""The shipped workflows and the per-workflow checks (tests/e2e/check_<name>.py)."""
from scripts.harness.server import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def saved_image(comfy, entry, node):
    """The one image a workflow's save node ``node`` wrote, as float RGB in 0..1."""
    import numpy as np
    from PIL import Image

    files = comfy.output_files(entry, node)
    assert len(files) == 1, files
    return np.asarray(Image.open(files[0]).convert("RGB"), dtype=np.float32) / 255.0

"""workflows/face_undistort.json: grace_hopper -> Face Undistort (geometry) -> saved image + face mask."""
import numpy as np
from PIL import Image

from scripts.harness.examples import EXAMPLES


def check(comfy, entry):
    source = np.asarray(EXAMPLES["recompose_grace_hopper.jpg"](), dtype=np.float32) / 255.0
    files = comfy.output_files(entry)
    mask_files = [f for f in files if f.name.startswith("face_undistort_mask")]
    image_files = [f for f in files if f.name.startswith("face_undistort_") and f not in mask_files]
    assert len(image_files) == 1 and image_files[0].exists()
    assert len(mask_files) == 1 and mask_files[0].exists()
    out = np.asarray(Image.open(image_files[0]).convert("RGB"), dtype=np.float32) / 255.0
    mask = np.asarray(Image.open(mask_files[0]).convert("L"), dtype=np.float32) / 255.0
    assert out.shape == source.shape, (out.shape, source.shape)
    assert mask.shape == source.shape[:2]
    assert np.isfinite(out).all()
    face = mask > 0.5
    assert face.sum() > 0.02 * face.size, "the face mask is (nearly) empty"
    diff = np.abs(out - source).sum(-1)
    assert diff[face].mean() > 0.01, "the face was not changed"
    # the background away from the face (the image's corners) is essentially unchanged; the
    # correction fades out over ~1 face width, and SaveImage truncates (<= 1/255 a channel)
    c = max(16, source.shape[1] // 16)
    for corner in (diff[:c, :c], diff[:c, -c:], diff[-c:, :c], diff[-c:, -c:]):
        assert corner.mean() < 2 / 255, corner.mean()
    assert diff[face].mean() > 10 * max(d.mean() for d in (diff[:c, :c], diff[-c:, -c:]))

"""One face finder pack-wide: Face Landmarks / Face Undistort find the faces Face Align Crop and Crop Region
find, down to a 70x80 px face in a 1600x1200 photo (issue 10)."""
import numpy as np
import pytest
import torch

from pipelines.selfie_tools import align, facemesh, regions
from pipelines.undistort import UndistortSettings, detect_landmarks, undistort_faces

pytest.importorskip("mediapipe")

FACE_AT = (1000, 700)  # top-left corner of the pasted portrait


@pytest.fixture(scope="module")
def small_face_photo():
    """The astronaut scaled so his face is ~70 px wide, pasted into a noisy 1600x1200 canvas."""
    import cv2
    from skimage import data

    astronaut = data.astronaut()
    face_width = np.ptp(facemesh.detect_faces(astronaut)[0][:, 0])
    side = int(round(512 * 70 / face_width))
    canvas = np.random.default_rng(0).normal(128, 20, (1200, 1600, 3)).clip(0, 255).astype(np.uint8)
    x0, y0 = FACE_AT
    canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    return canvas, side


def test_every_face_node_finds_the_same_small_face(small_face_photo):
    canvas, side = small_face_photo
    shared = facemesh.detect_faces(canvas)
    assert len(shared) == 1
    face = shared[0]
    assert 60 < np.ptp(face[:, 0]) < 80 and 70 < np.ptp(face[:, 1]) < 95
    x0, y0 = FACE_AT
    assert x0 < face[:, 0].mean() < x0 + side and y0 < face[:, 1].mean() < y0 + side
    # Face Landmarks / Face Undistort (468-point meshes of the same detection)
    image = torch.from_numpy(canvas.astype(np.float32) / 255)[None]
    landmarks = detect_landmarks(image)
    assert len(landmarks[0]) == 1 and np.array_equal(landmarks[0][0], face[:468])
    result = undistort_faces(image, UndistortSettings())
    assert result.faces[0].found and np.array_equal(result.faces[0].landmarks_in, face[:468])
    # Crop Region 'face' and Face Align Crop
    assert regions.region_box("face", canvas) == pytest.approx((*face[:, :2].min(0), *face[:, :2].max(0)))
    quad = align.quad_from_mediapipe(facemesh.pick_face(shared, -1))
    assert x0 < quad[:, 0].mean() < x0 + side

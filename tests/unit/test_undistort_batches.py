"""Batch pairing of Face Undistort's per-image inputs and of Apply Face Flow: one per image, or a batch of 1
shared by all; anything else is refused with a message naming both inputs and their sizes."""
import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.undistort import UndistortSettings, undistort_faces
from pipelines.undistort.geometry import focal_from_fov
from pipelines.undistort.synthetic import metric_face, view
from pipelines.undistort.warp import apply_flow, identity_map, remap


@pytest.fixture(scope="module")
def face_points():
    from skimage import data

    from pipelines.undistort import detect_landmarks

    face = metric_face(detect_landmarks(torch.from_numpy(data.astronaut().astype(np.float32) / 255)[None])[0][0])
    return view(face, 0.3, focal_from_fov(70, 128, 128), (128, 128)).near_px


@pytest.fixture(scope="module")
def two_images():
    torch.manual_seed(0)
    return torch.rand(2, 128, 128, 3)


SETTINGS = UndistortSettings(distance_m=0.3)


def test_depth_batch_3_for_2_images_is_refused(two_images, face_points):
    with pytest.raises(InputError, match=r"Face Undistort: 'depth' has a batch of 3 but 'image' has 2"):
        undistort_faces(two_images, SETTINGS, landmarks=[[face_points]] * 2, depth=torch.rand(3, 128, 128))
    with pytest.raises(InputError, match=r"'depth_mask' has a batch of 3 but 'image' has 2"):
        undistort_faces(two_images, SETTINGS, landmarks=[[face_points]] * 2, depth=torch.rand(2, 128, 128),
                        depth_mask=torch.ones(3, 128, 128))
    with pytest.raises(InputError, match=r"'landmarks' has a batch of 3 but 'image' has 2"):
        undistort_faces(two_images, SETTINGS, landmarks=[[face_points]] * 3)


def test_a_depth_batch_of_one_is_shared_by_every_image(two_images, face_points):
    depth = torch.rand(1, 128, 128)
    shared = undistort_faces(two_images, SETTINGS, landmarks=[[face_points]], depth=depth)
    repeated = undistort_faces(two_images, SETTINGS, landmarks=[[face_points]] * 2, depth=depth.expand(2, -1, -1))
    assert torch.equal(shared.images, repeated.images)
    assert not torch.equal(shared.images[0], shared.images[1])  # each image keeps its own pixels


def _two_maps():
    ident = identity_map(32, 32)
    shifted = ident + torch.tensor([3.0, 0.0])  # map 1 samples 3 px to the right
    return torch.stack([ident, shifted])


def test_apply_flow_pairs_map_i_with_image_i():
    images = torch.rand(2, 3, 32, 32)
    out = apply_flow(images, _two_maps(), "image")
    assert torch.allclose(out[0], images[0], atol=1e-5)
    assert torch.allclose(out[1, :, :, :20], images[1, :, :, 3:23], atol=1e-5)


def test_apply_flow_of_one_image_warps_every_image_and_other_batches_are_refused():
    maps = _two_maps()
    images = torch.rand(3, 3, 32, 32)
    one = apply_flow(images, maps[1:], "image")
    for i in range(3):
        assert torch.allclose(one[i], remap(images[i:i + 1], maps[1])[0])
    with pytest.raises(InputError, match=r"'flow' holds 2 warps .* but 'image' has a batch of 3"):
        apply_flow(images, maps, "image")
    with pytest.raises(InputError, match=r"'flow' is for 32x32 images but 'mask' is 16x32"):
        apply_flow(torch.rand(2, 1, 32, 16), maps, "mask")

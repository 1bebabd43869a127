"""Crop geometry: box and FFHQ crops, crop -> paste round trips, paste-back blending."""
import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.selfie_tools.align import ffhq_quad, quad_from_dlib68
from pipelines.selfie_tools.crop import (CropBatch, blend_mask, box_crop, box_of_mask, crop_images, paste_images,
                                         quad_crop)


def smooth_image(h=96, w=128):
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xs, ys, (xs + ys) / 2])[None]


def test_box_crop_keeps_aspect_and_centres_the_box():
    geo = box_crop((40, 20, 60, 60), (96, 128), (64, 32), context=1.0)
    # box 20x40 -> crop 32x64: scale 1.6 on both axes, box centre -> crop centre
    assert np.allclose(geo.matrix[:, :2], np.diag([1.6, 1.6]))
    assert np.allclose(geo.matrix @ [50, 40, 1], [16, 32])


def test_identity_crop_is_exact_and_paste_restores_the_original():
    img = smooth_image()
    geo = box_crop((0, 0, 128, 96), (96, 128), (96, 128), context=1.0)
    crops = CropBatch([geo])
    cut = crop_images(img, crops)
    assert torch.allclose(cut, img, atol=1e-5)
    back, used = paste_images(img, cut, crops)
    assert torch.allclose(back, img, atol=1e-5)
    assert used.shape == (1, 96, 128)


def test_paste_replaces_only_the_crop_area():
    img = smooth_image()
    crops = CropBatch([box_crop((30, 30, 60, 60), (96, 128), (64, 64), context=1.2, feather=0.1)])
    white = torch.ones(1, 3, 64, 64)
    back, used = paste_images(img, white, crops)
    assert torch.allclose(back[..., 45, 45], torch.ones(3), atol=1e-4)  # box centre fully replaced
    assert torch.equal(back[..., 0, 0], img[..., 0, 0]) and torch.equal(back[..., 90, 120], img[..., 90, 120])
    assert used.max() == pytest.approx(1.0, abs=1e-4) and used[0, 0, 0] == 0


def test_paste_respects_a_region_mask_and_resized_refinements():
    img = smooth_image()
    crops = CropBatch([box_crop((30, 30, 60, 60), (96, 128), (64, 64), context=1.2)])
    region = torch.zeros(1, 96, 128)
    region[:, :, :45] = 1
    back, _ = paste_images(img, torch.ones(1, 3, 128, 128), crops, region)  # refiner upscaled x2
    assert back[0, 0, 45, 40] == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(back[..., 45, 55], img[..., 45, 55], atol=1e-3)


def test_blend_mask_ramps_to_zero_at_the_border():
    geo = box_crop((0, 0, 10, 10), (20, 20), (40, 40), feather=0.25)
    m = blend_mask(geo)
    assert m[20, 20] == 1 and m[0, 0] < 0.01 and m[20, 0] < 0.05


def test_ffhq_quad_is_an_upright_square_for_a_level_face():
    quad = ffhq_quad((40, 50), (60, 50), (42, 75), (58, 75))
    sides = np.linalg.norm(np.roll(quad, -1, 0) - quad, axis=1)
    assert np.allclose(sides, sides[0])
    assert np.allclose(quad[0, 1], quad[3, 1]) and quad[1, 1] > quad[0, 1]  # top edge horizontal, y down
    # eye-mouth distance 25 -> half side max(2*20, 1.8*25) = 45 -> side 90
    assert sides[0] == pytest.approx(90)


def test_ffhq_crop_levels_a_rotated_face():
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = np.array([(40, 50), (60, 50), (42, 75), (58, 75)], float) @ rot.T + 100
    quad = ffhq_quad(*pts)
    geo = quad_crop(quad, (256, 256), 128)
    eyes = (geo.matrix @ np.c_[pts[:2], np.ones(2)].T).T
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-4  # eyes level in the crop (float32 affine)


def test_dlib68_landmarks_and_errors():
    pts = np.zeros((68, 2))
    pts[36:42] = (40, 50)
    pts[42:48] = (60, 50)
    pts[48], pts[54] = (42, 75), (58, 75)
    assert np.allclose(quad_from_dlib68(pts), ffhq_quad((40, 50), (60, 50), (42, 75), (58, 75)))
    with pytest.raises(InputError, match="68"):
        quad_from_dlib68(np.zeros((10, 2)))
    with pytest.raises(InputError, match="Degenerate"):
        ffhq_quad((1, 1), (1, 1), (1, 1), (1, 1))


def test_box_of_mask_and_bad_paste_inputs():
    m = np.zeros((10, 10))
    assert box_of_mask(m) is None
    m[2:4, 5:9] = 1
    assert box_of_mask(m) == (5, 2, 9, 4)
    crops = CropBatch([box_crop((0, 0, 5, 5), (10, 10), (8, 8))])
    with pytest.raises(InputError, match="cut from a 10x10"):
        paste_images(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 8, 8), crops)


def test_face_points_from_openpose_face_keypoints():
    from pipelines.selfie_tools.align import face_points_from_pose_json

    def person(x0, scale):
        pts = np.zeros((70, 3))
        pts[:, 0] = x0 + np.linspace(0, scale, 70)
        pts[:, 1] = 0.5
        pts[:, 2] = 1
        return {"face_keypoints_2d": pts.reshape(-1).tolist(), "pose_keypoints_2d": []}

    entry = {"people": [person(0.6, 0.3), person(0.1, 0.1)], "canvas_width": 100, "canvas_height": 50}
    largest = face_points_from_pose_json([entry], 0, -1, (100, 200))  # normalised coords, image 2x the canvas
    assert largest.shape == (70, 3) and largest[0, 0] == pytest.approx(120) and largest[0, 1] == pytest.approx(50)
    leftmost = face_points_from_pose_json([entry], 0, 0, (50, 100))
    assert leftmost[0, 0] == pytest.approx(10)
    with pytest.raises(InputError, match="only 2 face"):
        face_points_from_pose_json([entry], 0, 5, (50, 100))
    with pytest.raises(InputError, match="no face"):
        face_points_from_pose_json([{"people": []}], 0, -1, (50, 100))


def test_scaled_box_mask_grows_the_box_about_its_centre():
    from pipelines.selfie_tools.crop import scaled_box_mask

    m = np.zeros((100, 80))
    m[30:70, 20:40] = 1  # box 20 wide, 40 tall, centre (30, 50)
    box = scaled_box_mask(m, 1.1)
    ys, xs = np.nonzero(box)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (19, 41, 28, 72)
    assert box[50, 30] == 1 and box.sum() == 22 * 44
    assert scaled_box_mask(np.zeros((5, 5))).sum() == 0
    edge = np.zeros((10, 10))
    edge[0:10, 8:10] = 1
    assert scaled_box_mask(edge, 2.0).shape == (10, 10)  # clipped, no error


def test_crop_paste_round_trip_keeps_detail():
    from skimage import data

    img = torch.from_numpy(data.astronaut()[::2, ::2].copy()).float().div(255).permute(2, 0, 1)[None]
    crops = CropBatch([box_crop((90, 40, 140, 100), img.shape[-2:], (256, 256), context=1.3)])  # ~3.9x up
    back, _ = paste_images(img, crop_images(img, crops), crops)
    inner = (slice(None), slice(None), slice(50, 90), slice(100, 130))
    assert (back - img)[inner].abs().mean() < 1.0 / 255


def test_missing_mediapipe_is_a_clear_input_error(monkeypatch):
    import sys

    from pipelines.selfie_tools import mediapipe_runtime

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(InputError, match="mediapipe==0.10.21"):
        mediapipe_runtime.backend()

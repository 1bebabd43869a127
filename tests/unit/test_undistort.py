"""Face undistortion: eq. 3.3 geometry, synthetic ground truth, real photos, bad inputs."""
import sys

import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.undistort import UndistortSettings, detect_landmarks, undistort_faces
from pipelines.undistort.geometry import focal_from_fov, near_camera, project_far, radial_scale
from pipelines.undistort.landmarks import FACE_OVAL, interocular_px
from pipelines.undistort.synthetic import metric_face, view
from pipelines.undistort.warp import identity_map, invert_map_at, remap


def _photo(name):
    if name == "astronaut":
        from skimage import data

        rgb = data.astronaut()
    elif name == "coffee":
        from skimage import data

        rgb = data.coffee()
    else:
        import matplotlib.cbook

        from PIL import Image

        rgb = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]


@pytest.fixture(scope="module")
def astronaut():
    return _photo("astronaut")


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    faces = detect_landmarks(astronaut)[0]
    assert len(faces) == 1
    return metric_face(faces[0])


def _landmark_errors(result, v):
    """Mean distance of corrected near landmarks to the far projections, before and after."""
    moved = invert_map_at(result.sampling_maps[0], v.near_px[:, :2])
    after = np.linalg.norm(moved - v.far_px, axis=1)
    before = np.linalg.norm(v.near_px[:, :2] - v.far_px, axis=1)
    return before.mean(), after.mean()


def test_radial_scale_keeps_the_reference_plane_and_shrinks_near_points():
    assert radial_scale(0.0, 10.0) == pytest.approx(1.0)
    assert radial_scale(-0.1, 10.0) < 1.0 < radial_scale(0.2, 10.0)
    assert radial_scale(0.3, 1.0) == pytest.approx(1.0)  # k = 1: no change


def test_near_camera_from_distance_and_from_fov_agree():
    f = focal_from_fov(70, 512, 512)
    cam = near_camera(80.0, 512, 512, fov_deg=70)
    assert cam.focal_px == pytest.approx(f)
    back = near_camera(80.0, 512, 512, distance_m=cam.distance_m)
    assert back.focal_px == pytest.approx(f)


def test_eq_3_3_model_matches_the_synthetic_far_camera(astronaut_face):
    f = focal_from_fov(70, 512, 512)
    v = view(astronaut_face, 0.3, f, (512, 512), far_m=3.0, yaw_deg=10, offset_m=(0.03, -0.02))
    cam = near_camera(interocular_px(v.near_px), 512, 512, distance_m=v.eye_distance_m)
    rho = v.near_px[:, 2] / f
    rho -= rho[[33, 133, 362, 263]].mean()
    assert np.abs(project_far(v.near_px, rho, cam, 3.0) - v.far_px).max() < 0.05


@pytest.mark.parametrize("distance,yaw,offset", [(0.3, 0, (0, 0)), (0.25, 15, (0.04, -0.02)), (0.45, -12, (0, 0.03))])
def test_synthetic_landmark_error_is_sub_pixel(astronaut, astronaut_face, distance, yaw, offset):
    f = focal_from_fov(70, 512, 512)
    v = view(astronaut_face, distance, f, (512, 512), far_m=3.0, yaw_deg=yaw, offset_m=offset)
    result = undistort_faces(astronaut, UndistortSettings(fov_deg=70, far_m=3.0), landmarks=[[v.near_px]])
    before, after = _landmark_errors(result, v)
    assert result.faces[0].distance_m == pytest.approx(v.eye_distance_m, rel=0.05)
    assert before > 1.5
    assert after < 1.0 and after < before / 3


def test_non_square_batch_with_given_landmarks(astronaut_face):
    width, height = 384, 512
    f = focal_from_fov(70, width, height)
    views = [view(astronaut_face, d, f, (width, height)) for d in (0.3, 0.5)]
    images = torch.rand(2, height, width, 3)
    result = undistort_faces(images, UndistortSettings(), landmarks=[[v.near_px] for v in views])
    assert result.images.shape == images.shape and result.sampling_maps.shape == (2, height, width, 2)
    assert result.face_masks.shape == (2, height, width)
    assert torch.isfinite(result.images).all()
    assert torch.allclose(result.images[:, :20, :20], images[:, :20, :20], atol=1e-3)  # far background kept
    shift = (result.sampling_maps - identity_map(height, width)).norm(dim=-1)
    assert shift[0].max() > shift[1].max() > 0.3  # nearer selfie, larger correction


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_real_photos_are_corrected_sanely(name):
    image = _photo(name)
    result = undistort_faces(image, UndistortSettings(distance_m=0.3))
    face = result.faces[0]
    assert face.found and face.k == pytest.approx(10.0)
    assert torch.isfinite(result.images).all() and result.images.shape == image.shape
    inside = result.face_masks[0] > 0.5
    assert inside.sum() > 500
    diff = (result.images - image).abs().sum(-1)[0]
    assert diff[inside].mean() > 0.01
    # the background well away from the face does not move
    h, w = image.shape[1:3]
    centre = face.landmarks_in[:, :2].mean(0)
    width = np.ptp(face.landmarks_in[:, 0])
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    far = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2).sqrt() > 2.2 * width
    assert far.sum() > 1000
    assert diff[far].max() < 2e-3
    # the face widens: the oval's landmarks move away from the face centre
    oval_in = face.landmarks_in[FACE_OVAL, :2]
    oval_out = face.landmarks_out[FACE_OVAL]
    assert np.linalg.norm(oval_out - centre, axis=1).mean() > np.linalg.norm(oval_in - centre, axis=1).mean()


def test_no_face_is_a_clear_error_or_a_pass_through():
    image = _photo("coffee")[:, ::2, ::2].contiguous()
    with pytest.raises(InputError, match="No face found in image 0"):
        undistort_faces(image)
    result = undistort_faces(image, UndistortSettings(on_no_face="pass_through"))
    assert torch.allclose(result.images, image) and not result.faces[0].found
    assert "no face" in result.summary()


def test_face_index_and_tiny_faces(astronaut_face):
    f = focal_from_fov(70, 256, 256)
    big = view(astronaut_face, 0.3, f, (256, 256), offset_m=(-0.05, 0)).near_px
    small = view(astronaut_face, 0.6, f, (256, 256), offset_m=(0.12, 0)).near_px
    image = torch.rand(1, 256, 256, 3)
    largest = undistort_faces(image, UndistortSettings(), landmarks=[[small, big]])
    assert np.allclose(largest.faces[0].landmarks_in, big)
    right = undistort_faces(image, UndistortSettings(face_index=1), landmarks=[[small, big]])
    assert np.allclose(right.faces[0].landmarks_in, small)
    with pytest.raises(InputError, match="face_index 2"):
        undistort_faces(image, UndistortSettings(face_index=2), landmarks=[[small, big]])
    tiny = big.copy()
    tiny[:, :2] = (tiny[:, :2] - 128) * 0.08 + 128
    result = undistort_faces(image, UndistortSettings(), landmarks=[[tiny]])
    assert torch.equal(result.images, image) and "narrower" in result.faces[0].note


def test_depth_map_input_matches_the_mesh_path(astronaut, astronaut_face):
    from pipelines.undistort.depth import face_polygon_mask, landmark_rho, rho_field_from_landmarks

    f = focal_from_fov(70, 512, 512)
    v = view(astronaut_face, 0.3, f, (512, 512))
    mesh = undistort_faces(astronaut, UndistortSettings(), landmarks=[[v.near_px]])
    rho = rho_field_from_landmarks(v.near_px, landmark_rho(v.near_px, f), 512, 512)
    rho = torch.nn.functional.interpolate(torch.from_numpy(rho).float()[None, None], size=(512, 512),
                                          mode="bilinear", align_corners=False)[0, 0]
    disparity = (0.5 - rho)[None]  # brighter = closer, at the image's size
    mask = torch.from_numpy(face_polygon_mask(v.near_px, 512, 512))[None]
    depth = undistort_faces(astronaut, UndistortSettings(), landmarks=[[v.near_px]], depth=disparity,
                            depth_mask=mask)
    inside = mask[0] > 0.5
    gap = (depth.sampling_maps[0] - mesh.sampling_maps[0]).norm(dim=-1)[inside]
    assert gap.mean() < 0.5


def test_missing_mediapipe_says_what_to_install(monkeypatch):
    from pipelines.undistort.landmarks import FaceMeshDetector

    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(InputError, match="mediapipe==0.10.21"):
        FaceMeshDetector()


def test_identity_map_remap_is_exact():
    image = torch.rand(2, 3, 17, 23)
    assert torch.allclose(remap(image, identity_map(17, 23)), image, atol=1e-5)


class _Redetect:
    """A face mesh that finds, on any image, the given faces."""

    def __init__(self, *faces):
        from pipelines.undistort.landmarks import FaceLandmarks

        self.faces = [FaceLandmarks(f) for f in faces]

    def detect(self, rgb):
        return self.faces


def _mesh_with_eyes():
    from pipelines.undistort.landmarks import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(100, 200, 468), rng.uniform(80, 220, 468), rng.uniform(-40, 20, 468)])
    eyes = list(RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS)
    others = np.setdiff1d(np.arange(468), eyes)
    return points, others


def test_refined_depths_are_kept_when_they_bring_the_face_forward():
    from pipelines.undistort.undistort import refine_depth

    points, others = _mesh_with_eyes()
    again = points.copy()
    again[others, 2] -= 6.0  # everything but the eyes read 6 px nearer ...
    again[:, 2] += 10.0  # ... on a reading whose eye plane sits 10 px further back
    again[:, :2] += 3.0  # (the corrected face has moved a little)
    refined = refine_depth(torch.zeros(1, 3, 8, 8), points, _Redetect(again))
    assert np.array_equal(refined[:, :2], points[:, :2])  # positions from the near image
    assert np.allclose(refined[others, 2], points[others, 2] - 6.0)
    assert np.allclose(np.delete(refined[:, 2] - points[:, 2], others), 0.0)  # the eyes keep their depth


def test_refined_depths_that_push_the_face_back_or_a_far_face_are_ignored():
    from pipelines.undistort.undistort import refine_depth

    points, others = _mesh_with_eyes()
    back = points.copy()
    back[others, 2] += 6.0  # an over-corrected face reads as receding behind its eyes
    assert refine_depth(torch.zeros(1, 3, 8, 8), points, _Redetect(back)) is points
    elsewhere = points.copy()
    elsewhere[others, 2] -= 6.0
    elsewhere[:, 0] += 0.3 * np.ptp(points[:, 0])  # another face: its centre is over 1/4 face width away
    assert refine_depth(torch.zeros(1, 3, 8, 8), points, _Redetect(elsewhere)) is points
    assert refine_depth(torch.zeros(1, 3, 8, 8), points, _Redetect()) is points


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_depth_refinement_leaves_far_photos_taken_for_a_near_selfie_as_without_it(name):
    # Photos from afar corrected as 0.3 m selfies are over-corrected by the first pass; re-reading the depths
    # there would squash the face (astronaut: face height -24 %), so the default keeps the first reading.
    image = _photo(name)
    default = undistort_faces(image, UndistortSettings(distance_m=0.3))
    plain = undistort_faces(image, UndistortSettings(distance_m=0.3, refine_depth=False))
    assert UndistortSettings().refine_depth and "re-read" not in default.faces[0].note
    assert torch.equal(default.images, plain.images)


def test_undistortion_runs_on_one_torch_thread_and_restores_the_count(monkeypatch):
    import pipelines.undistort.undistort as undistort

    seen = []
    real = undistort.correct_one
    monkeypatch.setattr(undistort, "correct_one", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        undistort_faces(torch.rand(1, 32, 32, 3), landmarks=[[]], settings=UndistortSettings(on_no_face="pass_through"))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)

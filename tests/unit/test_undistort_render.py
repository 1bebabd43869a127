"""The bench's face-mesh rasteriser against hand-computed cases (projection, coverage, perspective-correct
weights, z-buffer, supersampled texture)."""
import numpy as np
import pytest

from pipelines.undistort.render import TexturedMesh, project, rasterize, render


def test_pinhole_projection_of_known_points():
    points = np.array([[0.1, -0.05, 0.5], [0.0, 0.0, 2.0], [-0.3, 0.6, 3.0]])
    # x = cx + f X / Z: 10 + 100 * 0.1 / 0.5 = 30, 20 - 100 * 0.05 / 0.5 = 10, ...
    expected = np.array([[30.0, 10.0], [10.0, 20.0], [0.0, 40.0]])
    assert np.allclose(project(points, 100.0, (10.0, 20.0)), expected)


def test_one_triangle_covers_the_pixel_centres_inside_it():
    # x >= 0.5, y >= 0.5, x + y <= 5.2: integer centres (1..4, 1..4) with x + y <= 5
    xy = np.array([[0.5, 0.5], [4.7, 0.5], [0.5, 4.7]])
    tri_id, weights = rasterize(xy, np.ones(3), np.array([[0, 1, 2]]), 7, 7)
    expected = {(x, y) for x in range(1, 5) for y in range(1, 5) if x + y <= 5}
    covered = {(int(x), int(y)) for y, x in zip(*np.nonzero(tri_id == 0))}
    assert covered == expected and len(expected) == 10
    assert (tri_id[tri_id != 0] == -1).all()
    # equal depths: plain barycentrics, e.g. at (1, 1): b = (1 - 0.5) / 4.2
    assert np.allclose(weights[1, 1], [1 - 2 * 0.5 / 4.2, 0.5 / 4.2, 0.5 / 4.2])


def test_weights_are_perspective_correct():
    # A, B at z = 2 and C at z = 4 lie on the plane z = 3 + y. The ray through pixel offset (0, -1) at f = 10
    # is (0, -Z/10, Z): it meets the plane at Z = 30/11, i.e. P = (0, -3/11, 30/11) = 3/22 A + 1/2 B + 4/11 C.
    # (Screen-space barycentrics there would be (1/6, 1/2, 1/3).)
    world = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [-1.0, 1.0, 4.0]])
    xy = project(world, 10.0, (6.0, 6.0))
    tri_id, weights = rasterize(xy, world[:, 2], np.array([[0, 1, 2]]), 13, 13)
    assert tri_id[5, 6] == 0
    assert np.allclose(weights[5, 6], [3 / 22, 1 / 2, 4 / 11])


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_z_buffer_keeps_the_nearest_triangle_in_any_order(order):
    xy = np.array([[0.5, 0.5], [8.5, 0.5], [0.5, 8.5], [1.5, 1.5], [9.5, 1.5], [1.5, 9.5]])
    z = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])  # the second triangle is nearer
    triangles = np.array([[0, 1, 2], [3, 4, 5]])[order]
    tri_id, _ = rasterize(xy, z, triangles, 10, 10)
    near = order.index(1)
    assert tri_id[3, 3] == near  # both cover it: the nearer wins
    assert tri_id[1, 1] == 1 - near  # only the far one covers it


def test_render_samples_the_texture_and_averages_supersamples():
    # A square facing the camera at z = 1 covering image x in [-0.5, 3.0] of an 8 px wide image, textured with a
    # constant red photo. Supersampling 2 puts samples at x = 2.75 and 3.25 in column 3: it is half covered.
    texture = np.zeros((4, 4, 3), np.float32)
    texture[..., 0] = 1.0
    f = 10.0
    cx = 3.5  # (8 - 1) / 2
    x0, x1 = (-0.5 - cx) / f, (3.0 - cx) / f  # image x = -0.5 and 3.0
    y0, y1 = (-0.5 - cx) / f, (7.5 - cx) / f
    world = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]])
    mesh = TexturedMesh(world, np.array([[0, 1, 2], [0, 2, 3]]), np.full((4, 2), 1.5), texture)
    image = render(mesh, world, f, (8, 8), supersample=2, background=0.0)
    assert np.allclose(image[:, :3, 0], 1.0) and np.allclose(image[:, 4:, 0], 0.0)
    assert np.allclose(image[:, 3, 0], 0.5) and np.allclose(image[:, 4, 0], 0.0)
    assert np.allclose(image[..., 1:], 0.0)


def test_a_rendered_near_face_is_corrected_towards_the_far_render_and_refinement_helps():
    # The bench's render truth on one case: the 0.25 m render, corrected as in normal use, against the 3 m one.
    import torch
    from skimage import data

    from pipelines.undistort import UndistortSettings, undistort_faces
    from pipelines.undistort.geometry import focal_from_fov
    from pipelines.undistort.landmarks import FaceMeshDetector
    from pipelines.undistort.render import face_mesh_from_photo, near_and_far

    detector = FaceMeshDetector()

    def landmarks(image):
        faces = detector.detect((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
        assert len(faces) == 1
        return faces[0].points[:, :2]

    photo = data.astronaut().astype(np.float32) / 255
    mesh = face_mesh_from_photo(detector.detect(data.astronaut())[0].points, photo)
    near, far = near_and_far(mesh, 0.25, focal_from_fov(70, 512, 512), (512, 512), 3.0)
    on_far = landmarks(far)

    def error(image):
        return float(np.linalg.norm(landmarks(image) - on_far, axis=1).mean())

    errors = {}
    for refine in (False, True):
        settings = UndistortSettings(fov_deg=70, far_m=3.0, refine_depth=refine)
        errors[refine] = error(undistort_faces(torch.from_numpy(near)[None], settings, detector=detector)
                               .images[0].numpy())
    before = error(near)
    assert before > 3.0
    assert errors[True] < 1.5 and errors[True] < before / 2.5
    assert errors[True] < 0.7 * errors[False]  # the face mesh's near-camera depths under-correct the chin

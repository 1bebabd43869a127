"""Cached mediapipe graphs survive bad images: good -> degenerate -> good gives identical outputs
(issue 10, "state that must not be poisoned"), and tiny images get a clear message."""
import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.selfie_tools import facemesh, person, regions
from pipelines.selfie_tools import mediapipe_runtime as mpr
from pipelines.undistort import UndistortSettings, undistort_faces

pytest.importorskip("mediapipe")

DEGENERATE = [np.zeros((1, 1, 3), np.uint8), np.zeros((3, 40, 3), np.uint8), np.zeros((15, 15, 3), np.uint8)]


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def small_face(astronaut):
    """The astronaut's face ~18 px wide on a plain canvas: only the full-range detector finds it."""
    import cv2

    canvas = np.full((640, 480, 3), 200, np.uint8)
    canvas[300:396, 200:296] = cv2.resize(astronaut, (96, 96), interpolation=cv2.INTER_AREA)
    return canvas


def _same(a, b):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b) and len(a) > 0
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def _good_bad_good(run_good, run_bad):
    before = run_good()
    with pytest.raises(InputError, match=r"mediapipe needs at least 16x16|mediapipe's .* failed"):
        run_bad()
    _same(run_good(), before)
    return before


@pytest.mark.parametrize("bad", DEGENERATE, ids=lambda a: f"{a.shape[1]}x{a.shape[0]}")
def test_face_mesh_and_small_face_detector_survive_a_tiny_image(astronaut, small_face, bad):
    big = _good_bad_good(lambda: facemesh.detect_faces(astronaut), lambda: facemesh.detect_faces(bad))
    assert len(big) == 1
    small = _good_bad_good(lambda: facemesh.detect_faces(small_face), lambda: facemesh.detect_faces(bad))
    assert len(small) == 1
    _good_bad_good(lambda: regions.region_box("face", small_face), lambda: regions.region_box("face", bad))


# selfie segmentation is left out: an empty image aborts the process inside it (the size check prevents it).
@pytest.mark.parametrize("graph", ["face_mesh", "face_detection", "pose"])
def test_a_graph_that_fails_inside_mediapipe_is_rebuilt(astronaut, small_face, graph):
    """Past the size check (here: an empty image straight into the graph), a mediapipe error used to leave
    the cached graph answering 'Graph has errors' to every later image."""
    cached = mpr.face_mesh(1) if graph == "face_mesh" else getattr(mpr, graph)()
    empty = np.zeros((0, 0, 3), np.uint8)

    def good():
        faces = facemesh.detect_faces(small_face)
        found = person.detect_person(astronaut)
        return [faces, [found.mask, found.landmarks]]

    _good_bad_good(good, lambda: cached.process(empty))


def test_pose_and_segmentation_survive_a_tiny_image(astronaut):
    def good():
        found = person.detect_person(astronaut)
        return [found.mask, found.landmarks]

    for bad in DEGENERATE:
        _good_bad_good(good, lambda: person.detect_person(bad))
        _good_bad_good(lambda: regions.region_box("both hands", astronaut),
                       lambda: regions.region_box("both hands", bad))


def test_face_undistort_survives_a_tiny_image(astronaut):
    image = torch.from_numpy(astronaut.astype(np.float32) / 255.0)[None]
    tiny = torch.zeros(1, 1, 1, 3)
    settings = UndistortSettings(distance_m=0.3)
    _good_bad_good(lambda: undistort_faces(image, settings).images,
                   lambda: undistort_faces(tiny, UndistortSettings(on_no_face="pass_through")))


def test_learned_corrector_survives_a_tiny_image(astronaut, tmp_path):
    from pipelines.undistort.learned import load_face_corrector, undistort_faces_learned
    from tests.fixtures.build_face_corrector import build

    corrector = load_face_corrector(str(build(tmp_path)))
    image = torch.from_numpy(astronaut.astype(np.float32) / 255.0)[None]
    torch.manual_seed(0)
    _good_bad_good(lambda: undistort_faces_learned(image, corrector).images,
                   lambda: undistort_faces_learned(torch.zeros(1, 2, 2, 3), corrector, on_no_face="pass_through"))


def test_size_message_names_what_and_what_to_do():
    with pytest.raises(InputError, match=r"Face Align Crop: the 'image' input is 1x1 px.*Upscale Image"):
        mpr.require_size(1, 1, "Face Align Crop: the 'image' input")
    mpr.require_size(16, 16)  # the minimum itself is accepted


def test_wrong_array_layout_is_refused_before_mediapipe():
    with pytest.raises(InputError, match="RGB uint8"):
        mpr.run(mpr.pose(), np.zeros((32, 32), np.uint8))
    with pytest.raises(InputError, match="RGB uint8"):
        mpr.run(mpr.pose(), np.zeros((32, 32, 3), np.float32))

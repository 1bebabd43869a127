"""mediapipe's Tasks API backend (current mediapipe, Python 3.13) against the solutions backend (0.10.21).

The Tasks models are assembled from the 0.10.21 wheel's own .tflite files (tests/fixtures/mediapipe_tasks.py),
so both backends run the same networks: pose, world landmarks, masks and face boxes must agree on the
astronaut. The face landmarker bundle cannot be assembled from the wheel (see that fixture), so the face mesh
path runs the real tasks wiring on a FaceLandmarkerResult recorded from the solutions face mesh.
"""
import os
import sys

import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.selfie_tools import facemesh, person
from pipelines.selfie_tools import mediapipe_backends as backends
from pipelines.selfie_tools import mediapipe_runtime as mpr
from tests.fixtures.mediapipe_tasks import build_task_models, bundle_with_face_detector

if os.environ.get("CI") == "true":
    import mediapipe.tasks.python.vision  # noqa: F401  (a missing mediapipe fails under CI)
else:
    pytest.importorskip("mediapipe.tasks.python.vision")

GOOGLE = "https://storage.googleapis.com/mediapipe-models/"


@pytest.fixture(autouse=True)
def fresh_graphs(monkeypatch):
    """Graphs are cached per backend; each test picks its own backend and model folder."""
    mpr._graph.cache_clear()
    monkeypatch.delenv(backends.BACKEND_ENV, raising=False)
    yield
    mpr._graph.cache_clear()
    backends.set_model_dirs(list)


@pytest.fixture(scope="module")
def task_models(tmp_path_factory):
    return build_task_models(tmp_path_factory.mktemp("mediapipe"))


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def _use(monkeypatch, backend, folder=None):
    monkeypatch.setenv(backends.BACKEND_ENV, backend)
    if folder is not None:
        backends.set_model_dirs(lambda: [str(folder)])


def _iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / (a | b).sum()


def test_solutions_is_chosen_when_it_imports_else_tasks(monkeypatch):
    assert mpr.backend() == "solutions"

    def no_solutions():
        raise AttributeError("module 'mediapipe' has no attribute 'solutions'")  # what mediapipe >= 0.10.30 says

    monkeypatch.setattr(backends, "_solutions_import", no_solutions)
    assert mpr.backend() == "tasks"
    monkeypatch.setenv(backends.BACKEND_ENV, "solutions")
    with pytest.raises(InputError, match="mediapipe==0.10.21"):
        mpr.backend()


def test_the_backend_can_be_forced_and_a_wrong_name_is_refused(monkeypatch):
    monkeypatch.setenv(backends.BACKEND_ENV, "tasks")
    assert mpr.backend() == "tasks"
    monkeypatch.setenv(backends.BACKEND_ENV, "Solutions")
    assert mpr.backend() == "solutions"
    monkeypatch.setenv(backends.BACKEND_ENV, "tflite")
    with pytest.raises(InputError, match="RECOMPOSE_MEDIAPIPE_BACKEND is 'tflite'; use 'solutions', 'tasks'"):
        mpr.backend()


def test_without_mediapipe_the_message_gives_both_ways_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(InputError) as info:
        mpr.require_for("Person Mask + Pose", "image", 512, 512, "connect a mask")
    message = str(info.value)
    assert "pip install --no-deps mediapipe==0.10.21" in message
    assert "on Python 3.13 'pip install mediapipe'" in message
    assert "face_landmarker.task, pose_landmarker_full.task, selfie_segmenter.tflite) in models/mediapipe" in message
    assert message.endswith("Or connect a mask.")


@pytest.mark.parametrize("run, file, url", [
    (lambda rgb: person.detect_person(rgb), "pose_landmarker_full.task",
     "pose_landmarker/pose_landmarker_full/float16/latest/pose_landmarker_full.task"),
    (lambda rgb: facemesh.detect_faces(rgb), "face_landmarker.task",
     "face_landmarker/face_landmarker/float16/latest/face_landmarker.task"),
    (lambda rgb: person.closeup_mask(rgb), "selfie_segmenter.tflite",
     "image_segmenter/selfie_segmenter/float16/latest/selfie_segmenter.tflite"),
], ids=["pose", "face", "segmentation"])
def test_a_missing_model_file_names_the_file_the_folder_and_where_google_publishes_it(
        monkeypatch, tmp_path, astronaut, run, file, url):
    _use(monkeypatch, "tasks", tmp_path)
    with pytest.raises(InputError) as info:
        run(astronaut)
    message = str(info.value)
    assert f"'{file}'" in message and str(tmp_path) in message and GOOGLE + url in message
    assert "never downloads" in message


def test_a_model_file_added_after_the_error_is_used(monkeypatch, tmp_path, task_models, astronaut):
    _use(monkeypatch, "tasks", tmp_path)
    with pytest.raises(InputError, match="pose_landmarker_full.task"):
        person.detect_person(astronaut)
    (tmp_path / "pose_landmarker_full.task").write_bytes((task_models / "pose_landmarker_full.task").read_bytes())
    assert person.detect_person(astronaut).found


def _both(monkeypatch, task_models, run):
    _use(monkeypatch, "solutions")
    ours = run()
    _use(monkeypatch, "tasks", task_models)
    return ours, run()


def test_tasks_pose_matches_solutions_on_the_astronaut(monkeypatch, task_models, astronaut):
    def run():
        found = person.detect_person(astronaut)
        return found, mpr.run(mpr.pose(), astronaut).world

    (sol, sol_world), (task, task_world) = _both(monkeypatch, task_models, run)
    assert sol.found and task.found and sol_world.shape == task_world.shape == (33, 3)
    visible = (sol.landmarks[:, 3] > 0.5) & (task.landmarks[:, 3] > 0.5)
    assert visible.sum() >= 10  # head, shoulders, arms of the half-length portrait
    # Same networks; the tasks graph projects landmarks back through its own ROI maths (measured: <= 4 px).
    assert np.abs(sol.landmarks[visible, :2] - task.landmarks[visible, :2]).max() < 6.0
    assert np.abs(sol_world - task_world).max() < 0.01  # metres
    assert _iou(sol.mask, task.mask) > 0.98 and 0.2 < (task.mask > 0.5).mean() < 0.8


def test_tasks_selfie_segmentation_matches_solutions(monkeypatch, task_models, astronaut):
    sol, task = _both(monkeypatch, task_models, lambda: person.closeup_mask(astronaut))
    assert task.shape == astronaut.shape[:2] and task.dtype == np.float32
    assert _iou(sol, task) > 0.98


def _face_box(rgb):
    (cx, cy, side), = facemesh._face_boxes(rgb)
    return np.array([cx, cy, side])


@pytest.mark.parametrize("detector_source", ["standalone file", "inside face_landmarker.task"])
def test_tasks_face_boxes_match_the_solutions_detector(monkeypatch, task_models, astronaut, tmp_path,
                                                       detector_source):
    if detector_source == "standalone file":
        folder = task_models
    else:
        folder = tmp_path
        bundle_with_face_detector(folder / "face_landmarker.task")
    wide = np.ascontiguousarray(astronaut[:400])  # not square, so x and y scales cannot be swapped unseen
    _use(monkeypatch, "solutions")
    sol = _face_box(wide)
    _use(monkeypatch, "tasks", folder)
    task = _face_box(wide)
    # Full-range (solutions) and short-range (tasks) BlazeFace: the same face, boxes within ~10 % of its side.
    assert np.abs(sol[:2] - task[:2]).max() < 0.15 * sol[2] and abs(sol[2] - task[2]) < 0.15 * sol[2]


class _RecordedLandmarker:
    """Stands in for vision.FaceLandmarker: answers with a recorded FaceLandmarkerResult."""

    def __init__(self, result, expected_rgb):
        self.result, self.expected_rgb, self.options = result, expected_rgb, None

    def detect(self, image):
        assert np.array_equal(image.numpy_view(), self.expected_rgb)
        return self.result

    def close(self):
        pass


def test_tasks_face_mesh_gives_the_same_pixels_as_solutions(monkeypatch, tmp_path, astronaut):
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.components.containers.landmark import NormalizedLandmark

    _use(monkeypatch, "solutions")
    expected = facemesh.detect_faces(astronaut)
    raw = mpr.run(mpr.face_mesh(4), astronaut)
    recorded = vision.FaceLandmarkerResult(
        face_landmarks=[[NormalizedLandmark(x=x, y=y, z=z) for x, y, z in face] for face in raw],
        face_blendshapes=[], facial_transformation_matrixes=[])
    stub = _RecordedLandmarker(recorded, astronaut)

    def create_from_options(options):
        stub.options = options
        return stub

    monkeypatch.setattr(vision.FaceLandmarker, "create_from_options", create_from_options)
    (tmp_path / "face_landmarker.task").write_bytes(b"")  # found by name; the stub never reads it
    _use(monkeypatch, "tasks", tmp_path)
    got = facemesh.detect_faces(astronaut)
    assert len(got) == len(expected) == 1 and got[0].shape == (478, 3)
    assert np.allclose(got[0], expected[0], atol=1e-4)
    assert stub.options.num_faces == 4 and stub.options.running_mode == vision.RunningMode.IMAGE
    assert stub.options.base_options.model_asset_path == str(tmp_path / "face_landmarker.task")


class _MaskImage:
    """A confidence mask as mediapipe 1.x returns it: numpy_view() is [H, W, 1] (0.10.x: [H, W])."""

    def __init__(self, mask):
        self._view = mask[..., None]

    def numpy_view(self):
        return self._view


def test_multiclass_segmenter_person_is_everything_but_background():
    background = np.array([[0.9, 0.2], [0.0, 0.5]], np.float32)
    hair = np.array([[0.1, 0.3], [0.4, 0.5]], np.float32)
    masks = [_MaskImage(m) for m in (background, hair)]
    assert np.allclose(backends.person_mask_from_confidence_masks(masks), [[0.1, 0.8], [1.0, 0.5]])
    assert backends.person_mask_from_confidence_masks(masks).shape == (2, 2)
    assert np.allclose(backends.person_mask_from_confidence_masks(masks[1:]), hair)  # selfie_segmenter: person
    assert backends.person_mask_from_confidence_masks([]) is None

"""The two ways mediapipe can run here, behind one set of pack-level results.

- ``solutions``: mediapipe 0.10.x's ``mp.solutions`` (models inside the wheel; Python <= 3.12).
- ``tasks``: the Tasks API (``mediapipe.tasks.python.vision``: FaceLandmarker, FaceDetector,
  PoseLandmarker, ImageSegmenter), the only API of current mediapipe releases (Python 3.13). Its
  model files are read from the pack's model folder (``models/mediapipe/``); nothing is downloaded.

``RECOMPOSE_MEDIAPIPE_BACKEND`` = ``solutions`` | ``tasks`` forces one; otherwise solutions is used
when it imports, else tasks. Every graph's ``process(rgb)`` returns the same plain results:

- face mesh: ``[N, 3]`` float arrays (x, y in 0..1 of the image, z in x's scale), one per face;
- face detector: ``(xmin, ymin, width, height, score)`` tuples, relative to the image;
- pose: ``PoseOutput`` (landmarks [33, 4] x, y, z, visibility normalised; world [33, 3] metres; mask);
- selfie segmentation: a person-probability mask [H, W] float32, or None.
"""
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..common.errors import InputError

BACKEND_ENV = "RECOMPOSE_MEDIAPIPE_BACKEND"
MODEL_FOLDER = "models/mediapipe"
_URL = "https://storage.googleapis.com/mediapipe-models/"
# Each Tasks model: the file names accepted, in order of preference, and where Google publishes the first.
TASK_MODELS = {
    "face_landmarker": (["face_landmarker.task"],
                        _URL + "face_landmarker/face_landmarker/float16/latest/face_landmarker.task"),
    "pose_landmarker": (["pose_landmarker_full.task", "pose_landmarker_heavy.task", "pose_landmarker_lite.task"],
                        _URL + "pose_landmarker/pose_landmarker_full/float16/latest/pose_landmarker_full.task"),
    "selfie_segmenter": (["selfie_segmenter.tflite", "selfie_multiclass_256x256.tflite"],
                         _URL + "image_segmenter/selfie_segmenter/float16/latest/selfie_segmenter.tflite"),
}
# The face landmarker bundle carries its own (short-range) face detector, used when this file is absent.
FACE_DETECTOR_FILE = "blaze_face_short_range.tflite"
_BUNDLED_FACE_DETECTOR = "face_detector.tflite"

_model_dirs: Callable[[], list] = list


def set_model_dirs(provider: Callable[[], list]) -> None:
    """Where Tasks model files are looked up: the nodes layer passes ComfyUI's 'mediapipe' folder paths
    (pipelines never import folder_paths); tests pass their own folder."""
    global _model_dirs
    _model_dirs = provider


def _solutions_import():
    import mediapipe as mp
    return mp.solutions  # AttributeError on mediapipe >= 0.10.30


def _tasks_import():
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    return mp, BaseOptions, vision


def choose() -> str:
    """'solutions' or 'tasks' (forced by RECOMPOSE_MEDIAPIPE_BACKEND, else the first that imports).
    Raises the import error of the last one tried."""
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced not in ("", "auto", "solutions", "tasks"):
        raise InputError(f"{BACKEND_ENV} is '{forced}'; use 'solutions', 'tasks' or leave it unset.")
    order = [forced] if forced in ("solutions", "tasks") else ["solutions", "tasks"]
    error = None
    for name in order:
        try:
            (_solutions_import if name == "solutions" else _tasks_import)()
            return name
        except Exception as exc:  # ImportError, or AttributeError for solutions on new mediapipe
            error = exc
    raise error


def find_model(kind: str) -> str:
    """Path of a Tasks model file in the model folder, or an InputError naming file, folder and URL."""
    names, url = TASK_MODELS[kind]
    dirs = list(_model_dirs())
    for folder in dirs:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    where = ", ".join(dirs) or MODEL_FOLDER
    alternatives = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
    raise InputError(f"mediapipe's Tasks API needs the model file '{names[0]}'{alternatives} in {where}. "
                     f"Google publishes it at {url}; download it yourself and place it there "
                     "(the pack never downloads). Or use mediapipe 0.10.21, whose models ship in the wheel.")


@dataclass
class PoseOutput:
    landmarks: Optional[np.ndarray]  # [33, 4] x, y (0..1), z (x's scale), visibility; None: no person
    world: Optional[np.ndarray]      # [33, 3] metres, hips-centred
    mask: Optional[np.ndarray]       # [H, W] float32 person probability


def _points(landmarks, fields=("x", "y", "z")) -> np.ndarray:
    return np.array([[getattr(p, f) for f in fields] for p in landmarks], dtype=np.float64)


# --- solutions (mediapipe 0.10.x) -------------------------------------------------------------------

class _Solution:
    def __init__(self, graph):
        self._graph = graph

    def close(self):
        self._graph.close()


class SolutionsFaceMesh(_Solution):
    def process(self, rgb):
        return [_points(f.landmark) for f in (self._graph.process(rgb).multi_face_landmarks or [])]


class SolutionsFaceDetection(_Solution):
    def process(self, rgb):
        out = []
        for det in self._graph.process(rgb).detections or []:
            box = det.location_data.relative_bounding_box
            out.append((box.xmin, box.ymin, box.width, box.height, float(det.score[0])))
        return out


class SolutionsPose(_Solution):
    def process(self, rgb):
        result = self._graph.process(rgb)
        if result.pose_landmarks is None:
            return PoseOutput(None, None, None)
        world = result.pose_world_landmarks
        return PoseOutput(_points(result.pose_landmarks.landmark, ("x", "y", "z", "visibility")),
                          None if world is None else _points(world.landmark), result.segmentation_mask)


class SolutionsSegmentation(_Solution):
    def process(self, rgb):
        return self._graph.process(rgb).segmentation_mask


def solutions_graph(kind: str, confidence: float, max_faces: int = 1):
    s = _solutions_import()
    if kind == "face_mesh":
        return SolutionsFaceMesh(s.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                                      refine_landmarks=True, min_detection_confidence=confidence))
    if kind == "face_detection":
        # Full range (model 1): the short-range model misses faces further than ~2 m.
        return SolutionsFaceDetection(s.face_detection.FaceDetection(model_selection=1,
                                                                     min_detection_confidence=confidence))
    if kind == "pose":
        # model_complexity=1 is the only pose model that ships inside the 0.10.21 wheel.
        return SolutionsPose(s.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                         min_detection_confidence=confidence))
    return SolutionsSegmentation(s.selfie_segmentation.SelfieSegmentation(model_selection=0))


# --- tasks (mediapipe.tasks.python.vision) ----------------------------------------------------------

class _Task:
    def __init__(self, task, mp):
        self._task, self._mp = task, mp

    def close(self):
        self._task.close()

    def _image(self, rgb):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)


class TasksFaceMesh(_Task):
    def process(self, rgb):
        return faces_from_task_result(self._task.detect(self._image(rgb)))


class TasksFaceDetection(_Task):
    def process(self, rgb):
        return boxes_from_task_result(self._task.detect(self._image(rgb)), *rgb.shape[:2])


class TasksPose(_Task):
    def process(self, rgb):
        return pose_from_task_result(self._task.detect(self._image(rgb)))


class TasksSegmentation(_Task):
    def process(self, rgb):
        return person_mask_from_confidence_masks(self._task.segment(self._image(rgb)).confidence_masks)


def faces_from_task_result(result) -> list:
    return [_points(face) for face in result.face_landmarks or []]


def boxes_from_task_result(result, height: int, width: int) -> list:
    """FaceDetector boxes are in pixels; the pack's boxes are relative like solutions'."""
    out = []
    for det in result.detections or []:
        box = det.bounding_box
        out.append((box.origin_x / width, box.origin_y / height, box.width / width, box.height / height,
                    float(det.categories[0].score)))
    return out


def pose_from_task_result(result) -> PoseOutput:
    if not result.pose_landmarks:
        return PoseOutput(None, None, None)
    landmarks = _points(result.pose_landmarks[0], ("x", "y", "z", "visibility"))
    world = _points(result.pose_world_landmarks[0]) if result.pose_world_landmarks else None
    masks = result.segmentation_masks
    return PoseOutput(landmarks, world, _mask_array(masks[0]) if masks else None)


def person_mask_from_confidence_masks(masks) -> Optional[np.ndarray]:
    """selfie_segmenter gives one mask (person); selfie_multiclass gives one per class, 0 = background."""
    if not masks:
        return None
    first = _mask_array(masks[0])
    return first if len(masks) == 1 else 1.0 - first


def _mask_array(image) -> np.ndarray:
    """A float mask image as [H, W] float32: mediapipe 0.10.x views it as [H, W], 1.x as [H, W, 1]."""
    view = image.numpy_view()
    return np.asarray(view, dtype=np.float32).reshape(view.shape[:2])


def _bundled_face_detector(bundle_path: str) -> bytes:
    with zipfile.ZipFile(bundle_path) as bundle:
        return bundle.read(_BUNDLED_FACE_DETECTOR)


def tasks_graph(kind: str, confidence: float, max_faces: int = 1):
    mp, BaseOptions, vision = _tasks_import()
    image_mode = vision.RunningMode.IMAGE
    if kind == "face_mesh":
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=find_model("face_landmarker")), running_mode=image_mode,
            num_faces=max_faces, min_face_detection_confidence=confidence)
        return TasksFaceMesh(vision.FaceLandmarker.create_from_options(options), mp)
    if kind == "face_detection":
        standalone = [os.path.join(d, FACE_DETECTOR_FILE) for d in _model_dirs()]
        standalone = [p for p in standalone if os.path.isfile(p)]
        model = (Path(standalone[0]).read_bytes() if standalone
                 else _bundled_face_detector(find_model("face_landmarker")))
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                             running_mode=image_mode, min_detection_confidence=confidence)
        return TasksFaceDetection(vision.FaceDetector.create_from_options(options), mp)
    if kind == "pose":
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=find_model("pose_landmarker")), running_mode=image_mode,
            num_poses=1, min_pose_detection_confidence=confidence, output_segmentation_masks=True)
        return TasksPose(vision.PoseLandmarker.create_from_options(options), mp)
    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=find_model("selfie_segmenter")), running_mode=image_mode,
        output_confidence_masks=True, output_category_mask=False)
    return TasksSegmentation(vision.ImageSegmenter.create_from_options(options), mp)


def build(backend: str, kind: str, confidence: float, max_faces: int = 1):
    """One graph of ``kind`` ('face_mesh', 'face_detection', 'pose', 'selfie_segmentation')."""
    return (solutions_graph if backend == "solutions" else tasks_graph)(kind, confidence, max_faces)

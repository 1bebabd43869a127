"""Lazy access to mediapipe's face mesh, face detection, pose and selfie segmentation.

mediapipe is optional: it has no wheel for every Python, and versions >= 0.10.30 dropped
``solutions`` for the Tasks API, whose model files the user places in models/mediapipe
(``mediapipe_backends`` runs either and returns the same results). Everything that needs it goes
through ``backend()``, which raises an InputError saying what to install instead of an ImportError
deep inside a node.

Graphs are cached per configuration (building one costs ~0.1 s) behind ``CachedGraph``: a
mediapipe graph that fails once answers every later call with "Graph has errors", so a failed
graph is closed and dropped, and the next call builds a fresh one. Images are checked before
they reach mediapipe (an empty or 1-pixel image is what makes its ROI check fail).

The detector configuration lives once (here and in ``mediapipe_backends``); every face node of the pack finds faces through
``facemesh.detect_faces``, which uses only these graphs.
"""
import functools
import threading

from ..common.errors import InputError
from ..common.install import MEDIAPIPE_INSTALL
from . import mediapipe_backends as backends

_LOCK = threading.Lock()  # mediapipe graphs are not re-entrant
MIN_SIDE = 16  # px; nothing mediapipe can find (a ~20 px face, a person) fits in less
DETECTION_CONFIDENCE = 0.5

INSTALL_HINT = (f"{MEDIAPIPE_INSTALL} (mediapipe 0.10.21 has wheels for Python 3.9-3.12); on Python 3.13 "
                "'pip install mediapipe' and put its Tasks model files (face_landmarker.task, "
                "pose_landmarker_full.task, selfie_segmenter.tflite) in models/mediapipe (README, Install)")


class CachedGraph:
    """One mediapipe solution, built on first use and rebuilt after a failure."""

    def __init__(self, name: str, build):
        self.name = name
        self._build = build
        self._graph = None

    def process(self, rgb):
        if self._graph is None:
            self._graph = self._build()
        try:
            return self._graph.process(rgb)
        except RuntimeError as exc:
            self.reset()
            height, width = rgb.shape[:2]
            raise InputError(f"mediapipe's {self.name} failed on a {width}x{height} image ({_first_line(exc)}). "
                             "The model was reset; try a larger or more ordinary photo.") from exc

    def reset(self):
        graph, self._graph = self._graph, None
        if graph is not None:
            try:
                graph.close()
            except Exception:  # a graph in error may refuse to close; it is dropped either way
                pass


def _first_line(exc) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else type(exc).__name__


def backend() -> str:
    """'solutions' or 'tasks' (see mediapipe_backends); an InputError saying what to install if neither imports."""
    try:
        return backends.choose()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"This node needs mediapipe: {INSTALL_HINT}. It could not be imported: {type(exc).__name__}: {exc}. "
            "Alternatively connect landmarks, a depth map or masks from other nodes."
        ) from exc


def face_mesh(max_faces: int) -> CachedGraph:
    return _graph(backend(), "face_mesh", max_faces)


def face_detection() -> CachedGraph:
    return _graph(backend(), "face_detection", 1)


def pose() -> CachedGraph:
    return _graph(backend(), "pose", 1)


def selfie_segmentation() -> CachedGraph:
    return _graph(backend(), "selfie_segmentation", 1)


_GRAPH_NAMES = {"face_mesh": "face mesh", "face_detection": "face detector", "pose": "pose model",
                "selfie_segmentation": "selfie segmentation"}


@functools.lru_cache(maxsize=8)
def _graph(backend_name: str, kind: str, max_faces: int) -> CachedGraph:
    return CachedGraph(_GRAPH_NAMES[kind],
                       lambda: backends.build(backend_name, kind, DETECTION_CONFIDENCE, max_faces))


def require_for(node: str, image_input: str, height: int, width: int, instead: str) -> None:
    """Before a node runs mediapipe on an image input: mediapipe must import (else say exactly what to
    install, or what to connect ``instead``) and the image must be large enough."""
    try:
        backend()
    except InputError as exc:
        raise InputError(f"{node} finds faces and people with mediapipe, which could not be imported "
                         f"({exc.__cause__.__class__.__name__}). Install it: {INSTALL_HINT}. Or {instead}.") from exc
    require_size(height, width, f"{node}: the '{image_input}' input")


def require_size(height: int, width: int, what: str = "The image") -> None:
    """InputError for images mediapipe cannot look at; ``what`` names the node and input."""
    if min(height, width) < MIN_SIDE:
        raise InputError(f"{what} is {width}x{height} px; mediapipe needs at least {MIN_SIDE}x{MIN_SIDE}. "
                         "Use a larger photo or upscale it first (core 'Upscale Image').")


def run(graph: CachedGraph, rgb_uint8):
    """Process one RGB uint8 [H, W, 3] image under the shared lock."""
    import numpy as np

    rgb = np.ascontiguousarray(rgb_uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"mediapipe needs an RGB uint8 image [H, W, 3], got {rgb.dtype} {tuple(rgb.shape)}.")
    require_size(*rgb.shape[:2])
    with _LOCK:
        return graph.process(rgb)

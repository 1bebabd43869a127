"""Lazy access to mediapipe's offline "solutions" (face mesh, face detection, pose, selfie segmentation).

mediapipe is optional: it has no wheel for every Python, and versions >= 0.10.30 dropped
``solutions`` (they download models). Everything that needs it goes through ``solutions()``,
which raises an InputError saying what to install instead of an ImportError deep inside a node.
Detector objects are cached per configuration because creating one costs ~0.1 s.
"""
import functools
import threading

from ..common.errors import InputError
from ..common.install import MEDIAPIPE_INSTALL

_LOCK = threading.Lock()  # mediapipe graphs are not re-entrant


def solutions():
    try:
        import mediapipe as mp
        return mp.solutions
    except Exception as exc:  # ImportError, or AttributeError on mediapipe >= 0.10.30
        raise InputError(
            f"This node needs mediapipe with its offline 'solutions' models ({MEDIAPIPE_INSTALL}). "
            f"It could not be imported: {type(exc).__name__}: {exc}. Alternatively connect "
            "landmarks, a depth map or masks from other nodes."
        ) from exc


@functools.lru_cache(maxsize=4)
def face_mesh(max_faces: int):
    return solutions().face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                          refine_landmarks=True, min_detection_confidence=0.5)


@functools.lru_cache(maxsize=2)
def face_detection(full_range: bool):
    return solutions().face_detection.FaceDetection(model_selection=1 if full_range else 0,
                                                    min_detection_confidence=0.5)


@functools.lru_cache(maxsize=1)
def pose():
    # model_complexity=1 is the only pose model that ships inside the 0.10.21 wheel.
    return solutions().pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                 min_detection_confidence=0.5)


@functools.lru_cache(maxsize=1)
def selfie_segmentation():
    return solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)


def run(detector, rgb_uint8):
    """Process one contiguous RGB uint8 [H, W, 3] image under the shared lock."""
    import numpy as np

    with _LOCK:
        return detector.process(np.ascontiguousarray(rgb_uint8))

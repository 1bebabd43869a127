"""Face landmarks made by other nodes, as the pack's mediapipe-mesh pixel arrays [478, 3].

Newer core ComfyUI has its own face landmarker (comfy_extras/mediapipe/face_landmarker.py) whose
FACE_LANDMARKS value holds, per image, a list of face dicts with ``landmarks_xy`` (478 x 2, image
pixels) and ``landmarks_3d`` (478 x 3 in the 192-px canonical crop of that face). The mesh topology
is mediapipe's, so the points index like ours; only the depth needs bringing to image pixels.
"""
import numpy as np

from ..common.errors import InputError

MESH_POINTS = 468


def _per_image(value, count: int) -> list:
    """FACE_LANDMARKS as one list of face dicts per image (a single image's list is shared)."""
    if isinstance(value, dict) and "faces" in value:
        value = value["faces"]
    if not isinstance(value, (list, tuple)):
        raise InputError(f"'face_landmarks' must be core ComfyUI's FACE_LANDMARKS (a list per image of faces "
                         f"with 'landmarks_xy'), got {type(value).__name__}.")
    if value and isinstance(value[0], dict):
        value = [value]
    if len(value) not in (1, count):
        raise InputError(f"'face_landmarks' holds {len(value)} images but 'image' has {count}; connect the "
                         "landmarks of these images, or of one image to share.")
    return list(value)


def _mesh_from_face(face: dict, need_depth: bool) -> np.ndarray:
    if not isinstance(face, dict) or "landmarks_xy" not in face:
        raise InputError("A face in 'face_landmarks' has no 'landmarks_xy' (478 image-pixel points); connect "
                         "core ComfyUI's face landmarker output.")
    xy = np.asarray(face["landmarks_xy"], np.float64).reshape(-1, 2)
    if xy.shape[0] < MESH_POINTS:
        raise InputError(f"A face in 'face_landmarks' has {xy.shape[0]} points; a mediapipe face mesh has "
                         f"{MESH_POINTS} or 478.")
    z = np.zeros(len(xy))
    if need_depth and face.get("landmarks_3d") is None:
        raise InputError("Face Undistort needs the faces' depth: 'face_landmarks' has no 'landmarks_3d'. Connect "
                         "the landmarker output that carries it, a depth map, or leave the input empty.")
    if face.get("landmarks_3d") is not None:
        canon = np.asarray(face["landmarks_3d"], np.float64).reshape(len(xy), 3)
        # canonical crop -> image is a similarity: its scale is the ratio of the point spreads
        spread = np.sqrt(canon[:, :2].var(0).sum())
        z = canon[:, 2] * (np.sqrt(xy.var(0).sum()) / spread if spread > 0 else 0.0)
    return np.column_stack([xy, z])


def faces_from_face_landmarks(value, count: int, need_depth: bool = False) -> list:
    """Per image of a batch of ``count``, a list of [N, 3] pixel meshes (x, y, depth in x's pixel scale;
    0 without ``landmarks_3d``, which only ``need_depth`` refuses)."""
    per_image = _per_image(value, count)
    return [[_mesh_from_face(face, need_depth) for face in per_image[min(i, len(per_image) - 1)]]
            for i in range(count)]

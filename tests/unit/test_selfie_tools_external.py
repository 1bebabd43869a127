"""Face landmarks from other nodes (core ComfyUI's FACE_LANDMARKS), and what a mediapipe node says
when mediapipe is missing (issue 12)."""
import sys

import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.common.install import MEDIAPIPE_INSTALL
from pipelines.selfie_tools import align, mediapipe_runtime
from pipelines.selfie_tools.external_faces import faces_from_face_landmarks


def _mesh(seed=0):
    """A stand-in mesh in image pixels: x, y spread over a ~90 px face, z in the same pixel scale."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(180, 270, 478), rng.uniform(70, 180, 478)
    return np.column_stack([x, y, 0.004 * ((x - 225) ** 2 + (y - 125) ** 2) - 12])  # a bowl: cheeks behind


def _core_face(mesh, angle_deg=12.0, crop_side=135.0):
    """What core's landmarker emits: pixels, plus the mesh in a rotated 192-px canonical crop."""
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = mesh[:, :2].mean(0)
    scale = crop_side / 192.0  # image pixels per canonical unit
    canon_xy = (mesh[:, :2] - centre) @ rot / scale + 96.0  # inverse of image = centre + rot (canon - 96) s
    canon = np.column_stack([canon_xy, mesh[:, 2] / scale])
    return {"landmarks_xy": mesh[:, :2].astype(np.float32), "landmarks_3d": canon.astype(np.float32),
            "bbox_xyxy": np.r_[mesh[:, :2].min(0), mesh[:, :2].max(0)], "score": 0.9}


def test_core_face_landmarks_become_pixel_meshes_with_depth():
    mesh = _mesh()
    faces = faces_from_face_landmarks([[_core_face(mesh)]], 1, need_depth=True)
    assert len(faces) == 1 and len(faces[0]) == 1
    assert np.allclose(faces[0][0], mesh, atol=1e-3)


def test_one_image_of_landmarks_is_shared_and_other_counts_are_refused():
    a, b = _core_face(_mesh(0)), _core_face(_mesh(1))
    shared = faces_from_face_landmarks([a, b], 3)  # a single image's face list
    assert len(shared) == 3 and all(len(f) == 2 for f in shared)
    with pytest.raises(InputError, match=r"'face_landmarks' holds 2 images but 'image' has 3"):
        faces_from_face_landmarks([[a], [b]], 3)


def test_bad_face_landmarks_say_what_is_expected():
    with pytest.raises(InputError, match="landmarks_xy"):
        faces_from_face_landmarks([[{"bbox_xyxy": [0, 0, 1, 1]}]], 1)
    with pytest.raises(InputError, match="has 68 points"):
        faces_from_face_landmarks([[{"landmarks_xy": np.zeros((68, 2))}]], 1)
    with pytest.raises(InputError, match="FACE_LANDMARKS"):
        faces_from_face_landmarks("not landmarks", 1)
    flat = {"landmarks_xy": _mesh()[:, :2]}
    assert np.all(faces_from_face_landmarks([[flat]], 1)[0][0][:, 2] == 0)  # enough to align a face
    with pytest.raises(InputError, match="needs the faces' depth"):
        faces_from_face_landmarks([[flat]], 1, need_depth=True)


def test_converted_landmarks_align_and_undistort_like_the_mesh_itself():
    import torch

    from pipelines.undistort import UndistortSettings, undistort_faces

    mesh = _mesh()
    converted = faces_from_face_landmarks([[_core_face(mesh)]], 1, need_depth=True)[0][0]
    assert np.allclose(align.quad_from_mediapipe(converted), align.quad_from_mediapipe(mesh), atol=1e-3)
    image = torch.rand(1, 256, 384, 3)
    a = undistort_faces(image, UndistortSettings(distance_m=0.4), landmarks=[[mesh[:468]]])
    b = undistort_faces(image, UndistortSettings(distance_m=0.4), landmarks=[[converted[:468]]])
    assert (a.sampling_maps - b.sampling_maps).abs().max() < 0.01 and a.faces[0].note == b.faces[0].note


def test_missing_mediapipe_says_what_to_install_and_what_to_connect(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(InputError) as info:
        mediapipe_runtime.require_for("Face Align Crop", "image", 512, 512, "connect 'face_keypoints'")
    message = str(info.value)
    assert message.startswith("Face Align Crop finds faces and people with mediapipe")
    assert MEDIAPIPE_INSTALL in message
    assert message.endswith("Or connect 'face_keypoints'.")

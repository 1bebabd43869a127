"""Selfie tools in the real server: errors reach the user as clear messages."""
import re

import pytest

from scripts.harness.server import WorkflowError


def _prompt(node: dict) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "recompose_coffee.jpg"}},
            "2": node,
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def test_align_without_a_face_says_so(comfy):
    node = {"class_type": "RecomposeFaceAlignCrop",
            "inputs": {"image": ["1", 0], "size": 256, "face_index": -1, "feather": 0.08}}
    with pytest.raises(WorkflowError, match="No face was found"):
        comfy.run(_prompt(node), timeout=120)


def test_ranking_with_a_parser_scheme_needs_label_maps(comfy):
    node = {"class_type": "RecomposeRankReferences", "inputs": {"photos": ["1", 0], "label_scheme": "CIHP (M2FP)"}}
    with pytest.raises(WorkflowError, match="photo_label_maps"):
        comfy.run(_prompt(node), timeout=120)


# --- state that must not be poisoned (issue 10) --------------------------------------------------

def _small_face_input(comfy) -> str:
    """The astronaut's face ~18 px wide on a 480x640 canvas (only the full-range detector sees it)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    name = "recompose_test_small_face.png"
    path = comfy.base / "input" / name
    if not path.exists():
        canvas = np.full((640, 480, 3), 200, np.uint8)
        canvas[300:396, 200:296] = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96), Image.LANCZOS))
        Image.fromarray(canvas).save(path)
    return name


def _saved_pixels(comfy, entry):
    import numpy as np
    from PIL import Image

    files = comfy.output_files(entry, "3")
    assert len(files) == 1
    return np.asarray(Image.open(files[0]))


@pytest.mark.parametrize("node", [
    {"class_type": "RecomposeFaceAlignCrop", "inputs": {"size": 128, "face_index": -1}},
    {"class_type": "RecomposeRegionCrop", "inputs": {"region": "face", "width": 128, "height": 128,
                                                     "context": 1.5, "face_index": -1}},
], ids=["align", "region"])
def test_a_1x1_image_does_not_break_small_face_detection(comfy, node):
    small = _small_face_input(comfy)

    def prompt(source: dict, feather: float) -> dict:
        # feather only changes the crop geometry: a new value makes ComfyUI run the node again
        inputs = dict(node["inputs"], image=["1", 0], feather=feather)
        return {"1": source, "2": {"class_type": node["class_type"], "inputs": inputs},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "state"}}}

    photo = {"class_type": "LoadImage", "inputs": {"image": small}}
    dot = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}}
    before = _saved_pixels(comfy, comfy.run(prompt(photo, 0.08), timeout=120))
    with pytest.raises(WorkflowError, match=r"'image' input is 1x1 px; mediapipe needs at least 16x16"):
        comfy.run(prompt(dot, 0.09), timeout=120)
    after = _saved_pixels(comfy, comfy.run(prompt(photo, 0.1), timeout=120))
    assert before.std() > 5 and (before == after).all()


# --- silent wrong output (issue 10) ---------------------------------------------------------------

def _preview_text(entry, node_id: str) -> str:
    return "".join(entry["outputs"][node_id]["text"])


@pytest.mark.parametrize("photo,person", [("recompose_chelsea.jpg", False), ("recompose_coffee.jpg", False),
                                          ("recompose_astronaut.jpg", True)])
def test_person_pose_without_a_person_gives_an_empty_mask_and_says_so(comfy, photo, person):
    import numpy as np
    from PIL import Image

    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": photo}},
              "2": {"class_type": "RecomposePersonPose", "inputs": {"image": ["1", 0], "threshold": 0.5}},
              "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "person"}},
              "5": {"class_type": "PreviewAny", "inputs": {"source": ["2", 4]}}}
    entry = comfy.run(prompt, timeout=120)
    share = (np.asarray(Image.open(comfy.output_files(entry, "3")[0])) > 127).mean()
    report = _preview_text(entry, "5")
    if person:
        assert 0.3 < share < 0.75 and "person found" in report
    else:
        assert share == 0 and "no person found" in report and "empty" in report


def test_shoes_out_of_frame_is_a_clear_error(comfy):
    node = {"class_type": "RecomposeRegionCrop",
            "inputs": {"image": ["1", 0], "region": "shoes", "width": 256, "height": 256, "context": 1.5,
                       "feather": 0.08, "face_index": -1}}
    prompt = _prompt(node)
    prompt["1"]["inputs"]["image"] = "recompose_astronaut.jpg"  # a portrait: his feet are below the frame
    with pytest.raises(WorkflowError, match="shoes are not in the image"):
        comfy.run(prompt, timeout=120)


def test_face_undistort_refuses_a_depth_batch_of_3_for_2_images(comfy):
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},
              "4": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
              "5": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
              "2": {"class_type": "RecomposeFaceUndistort",
                    "inputs": {"image": ["4", 0], "depth": ["5", 0], "mode": "geometry", "far_distance_m": 3.0,
                               "selfie_distance_m": 0.3, "fov_degrees": 70.0, "face_index": -1,
                               "on_no_face": "error", "falloff": 0.35, "depth_is_disparity": True}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    with pytest.raises(WorkflowError, match=r"'depth' has a batch of 3 but 'image' has 2"):
        comfy.run(prompt, timeout=120)


UNDISTORT_INPUTS = {"mode": "geometry", "far_distance_m": 3.0, "selfie_distance_m": 0.0, "fov_degrees": 70.0,
                    "face_index": -1, "on_no_face": "pass_through", "falloff": 0.35, "depth_is_disparity": True}


@pytest.mark.parametrize("class_type,inputs,named", [
    ("RecomposeFaceLandmarks", {}, "Face Landmarks: the 'image' input"),
    ("RecomposeFaceUndistort", UNDISTORT_INPUTS, "Face Undistort: the 'image' input"),
    ("RecomposePersonPose", {"threshold": 0.5}, "Person Mask + Pose: the 'image' input"),
    ("RecomposeRegionCrop", {"region": "left hand", "width": 64, "height": 64, "context": 1.5, "feather": 0.08,
                             "face_index": -1}, "Crop Region ('left hand'): the 'image' input"),
    ("RecomposeRankReferences", {"label_scheme": "mediapipe coarse parts"},
     "Rank Reference Photos (mediapipe scheme): the 'photos' input"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("Recompose") else "")
def test_tiny_images_get_a_message_naming_node_input_and_fix(comfy, class_type, inputs, named):
    image_input = "photos" if class_type == "RecomposeRankReferences" else "image"
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 7, "height": 5, "batch_size": 1, "color": 0}},
              "2": {"class_type": class_type, "inputs": dict(inputs, **{image_input: ["1", 0]})},
              "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    with pytest.raises(WorkflowError, match=rf"{re.escape(named)} is 7x5 px; mediapipe needs at least 16x16\. "
                                            r"Use a larger photo or upscale it"):
        comfy.run(prompt, timeout=120)

"""Selfie tools in the real server: errors reach the user as clear messages."""
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

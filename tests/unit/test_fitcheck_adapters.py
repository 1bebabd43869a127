"""The Fit Check adapter nodes: Prepend References takes exactly one front and one back image."""
import importlib

import pytest
import torch

from scripts.harness.inprocess import import_pack


@pytest.fixture(scope="module")
def fitcheck_nodes():
    import_pack()
    return importlib.import_module("recompose_pack.nodes.fitcheck")


def test_prepend_puts_front_and_back_first(fitcheck_nodes):
    frames, front, back = torch.rand(3, 8, 8, 3), torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 4)
    out = fitcheck_nodes.RecomposePrependReferences.execute(frames, front, back).result[0]
    assert out.shape == (5, 8, 8, 3)
    assert torch.equal(out[0], front[0]) and torch.equal(out[1], back[0, ..., :3]) and torch.equal(out[2:], frames)


@pytest.mark.parametrize("which", ["front", "back"])
def test_prepend_refuses_a_batch_of_references_instead_of_dropping_them(fitcheck_nodes, which):
    images = {"frames": torch.rand(3, 8, 8, 3), "front": torch.rand(1, 8, 8, 3), "back": torch.rand(1, 8, 8, 3)}
    images[which] = torch.rand(2, 8, 8, 3)
    errors = importlib.import_module("recompose_pack.pipelines.common.errors")  # the class the pack raises
    with pytest.raises(errors.InputError, match=f"Prepend References: '{which}' holds 2 images"):
        fitcheck_nodes.RecomposePrependReferences.execute(**images)


def test_loader_dropdown_lists_svd_folders_without_unet_weights(fitcheck_nodes, tmp_path):
    import json

    import folder_paths

    from tests.fixtures import build_fitcheck

    for name, unet in (("svd_config_only", True), ("svd_no_unet", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model_index.json").write_text(json.dumps(build_fitcheck.MODEL_INDEX))
        if unet:
            (tmp_path / name / "unet").mkdir()
            (tmp_path / name / "unet" / "config.json").write_text('{"_class_name": "UNetSpatioTemporalConditionModel"}')
    (tmp_path / "sd15").mkdir()
    (tmp_path / "sd15" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    folder_paths.add_model_folder_path("diffusers", str(tmp_path))
    try:
        listed = fitcheck_nodes._svd_folders()
    finally:
        folder_paths.folder_names_and_paths["diffusers"][0].remove(str(tmp_path))
    assert "svd_config_only" in listed and "svd_no_unet" in listed and "sd15" not in listed

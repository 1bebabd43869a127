"""The AlignTok training node in the real server: a few stage-1 steps on a folder of
images, saved into the model folder; bad folders and names are explained."""
import pytest
from PIL import Image

from scripts.harness.server import WorkflowError
from tests.fixtures import build_aligntok as fixture


def train_prompt(folder, save_as, steps=2):
    return {"1": {"class_type": "RecomposeAlignTokLoader", "inputs": {"tokenizer_name": "aligntok_f16d32.safetensors"}},
            "2": {"class_type": "RecomposeAlignTokTrain",
                  "inputs": {"tokenizer": ["1", 0], "image_folder": folder, "stage": 1, "steps": steps,
                             "batch_size": 2, "size": 32, "lr_stage1": 1e-3, "lr_stage2": 1e-5, "lr_stage3": 1e-4,
                             "gan_start_stage1": 1, "gan_start_stages_2_3": 0, "save_as": save_as}},
            "3": {"class_type": "RecomposeAlignTokEncode",
                  "inputs": {"tokenizer": ["2", 0], "image": ["4", 0]}},
            "4": {"class_type": "LoadImage", "inputs": {"image": "recompose_astronaut.jpg"}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": "done"}},
            "6": {"class_type": "RecomposeAlignTokDecode",
                  "inputs": {"tokenizer": ["2", 0], "latent": ["3", 0], "tile_size": 32, "tile_overlap": 4}},
            "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}}


def test_training_node_saves_a_loadable_tokenizer(comfy):
    import torch

    from pipelines.aligntok.model import load_tokenizer

    folder = comfy.base / "input" / "aligntok_train"
    folder.mkdir(exist_ok=True)
    for name in ("recompose_chelsea.jpg", "recompose_coffee.jpg"):
        Image.open(comfy.base / "input" / name).save(folder / name)
    comfy.run(train_prompt("aligntok_train", "aligntok_e2e.safetensors"), timeout=600)
    models = comfy.base / "models" / "recompose" / "aligntok"
    trained, start = load_tokenizer(models / "aligntok_e2e.safetensors"), load_tokenizer(models / fixture.TINY_NAME)

    def differ(a, b):
        return any(not torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    # stage 1: the encoder stays frozen, the adapter and decoder train
    assert (differ(trained.encoder, start.encoder), differ(trained.adapter, start.adapter),
            differ(trained.decoder, start.decoder)) == (False, True, True)
    # the GAN ran from step 1 (gan_start_stage1 = 1): its discriminator is in the file for stage 2
    assert trained.discriminator_state and not start.discriminator_state


def test_training_node_explains_bad_input(comfy):
    with pytest.raises(WorkflowError, match="No images"):
        comfy.run(train_prompt("no_such_folder", "x.safetensors"), timeout=120)
    with pytest.raises(WorkflowError, match="plain file name"):
        comfy.run(train_prompt("aligntok_train", "../x.safetensors"), timeout=120)

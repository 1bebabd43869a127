"""Files saved by older transformers carry non-persistent buffers (CLIP's ``embeddings.position_ids``):
strict loads ignore exactly those, and still refuse any other key the module lacks."""
import pytest
import torch

from pipelines.common.checkpoints import load_into
from pipelines.common.errors import CheckpointFormatError
from tests.fixtures import build_selfie_inpaint as fixture

POSITION_IDS = "model.vision_model.embeddings.position_ids"


@pytest.fixture(scope="module")
def legacy_encoder_folder(tmp_path_factory):
    """A plain Paint-by-Example image_encoder/ as older transformers saved it: with position_ids."""
    folder = tmp_path_factory.mktemp("pbe_legacy") / "image_encoder"
    torch.manual_seed(0)
    fixture._write_encoder(folder, "four_tokens", "pytorch_model.bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    positions = (fixture.CLIP_SIZE // fixture.CLIP_CONFIG["patch_size"]) ** 2 + 1
    state[POSITION_IDS] = torch.arange(positions).unsqueeze(0)
    torch.save(state, folder / "pytorch_model.bin")
    return folder, state


def test_paint_by_example_encoder_saved_with_position_ids_loads(legacy_encoder_folder):
    from pipelines.selfie_inpaint.encoder import official_state_dict
    from pipelines.selfie_inpaint.loader import load_selfie_image_encoder

    folder, saved = legacy_encoder_folder
    encoder = load_selfie_image_encoder(folder)
    loaded = official_state_dict(encoder)
    assert set(saved) - set(loaded) == {POSITION_IDS}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


class WithBuffers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.register_buffer("position_ids", torch.arange(4), persistent=False)
        self.register_buffer("scale", torch.ones(2))  # persistent: part of the weights


def test_only_non_persistent_buffers_are_ignored():
    module = WithBuffers()
    good = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    load_into(module, {**good, "position_ids": torch.arange(4) + 7}, "f.pth", "test module")
    assert torch.equal(module.position_ids, torch.arange(4)) and torch.equal(module.scale, torch.zeros(2))
    with pytest.raises(CheckpointFormatError, match="1 unexpected"):
        load_into(module, {**good, "linear.position_ids": torch.arange(4)}, "f.pth", "test module")
    with pytest.raises(CheckpointFormatError, match="1 missing"):
        load_into(module, {k: v for k, v in good.items() if k != "scale"}, "f.pth", "test module")

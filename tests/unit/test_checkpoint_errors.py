"""Weight files that will not load are reported for what they are: a pickle that weights_only=True
refused keeps torch's own explanation (it names the offending class), and a file cut short is
reported as truncated, not as a wrong format. Every message names the file and its folder."""
import pytest
import torch
from safetensors.torch import save_file

from pipelines.common import CheckpointFormatError
from pipelines.common.checkpoints import load_state_dict


class CustomPayload:
    """Stands for any non-tensor class a pickled checkpoint might carry."""

    def __init__(self):
        self.value = 3


def _refusal(path) -> str:
    with pytest.raises(CheckpointFormatError) as err:
        load_state_dict(path)
    message = str(err.value)
    assert f"file '{path.name}' in folder '{path.parent}'" in message
    return message


def test_refused_pickle_keeps_torchs_explanation(tmp_path):
    path = tmp_path / "payload.pth"
    torch.save({"w": torch.zeros(2), "extra": CustomPayload()}, path)
    message = _refusal(path)
    # torch's own text: its 'Weights only load failed' header and the blocked global's full name
    assert "Weights only load failed" in message
    assert "CustomPayload" in message and "test_checkpoint_errors" in message
    assert "truncated" not in message


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


@pytest.mark.parametrize("keep", [lambda n: n - 100, lambda n: 40, lambda n: 4, lambda n: 0],
                         ids=["tail-cut", "in-header", "in-length", "empty"])
def test_truncated_safetensors_is_reported_as_truncated(tmp_path, keep):
    path = tmp_path / "cut.safetensors"
    save_file({"w": torch.zeros(1000)}, str(path))
    _cut(path, keep)
    assert "truncated or corrupt" in _refusal(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("fraction", [0.5, 0.98])
def test_truncated_pth_is_reported_as_truncated(tmp_path, legacy, fraction):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.arange(1000.0)}, path, _use_new_zipfile_serialization=not legacy)
    _cut(path, lambda n: int(n * fraction))
    assert "truncated or corrupt" in _refusal(path)


def test_wrong_format_is_not_called_truncated(tmp_path):
    for name, data in (("text.safetensors", b"hello world, not a weight file at all"),
                       ("text.pth", b"hello world, not a weight file at all")):
        path = tmp_path / name
        path.write_bytes(data)
        message = _refusal(path)
        assert "Not a readable" in message and "truncated" not in message

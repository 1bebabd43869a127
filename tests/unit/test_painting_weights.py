"""Official checkpoint layouts load through the user's path; anything else names file, folder and keys."""
import os

import pytest
import torch

from pipelines.common import CheckpointFormatError
from pipelines.inverse_painting.mask_generator import choose_threshold, load_mask_generator
from pipelines.inverse_painting.renderer import load_renderer
from pipelines.inverse_painting.weights import find_config, load_config
from tests.unit.painting_helpers import painting_models, tiny_rp  # noqa: F401


def _copy_ckpt(src, dst, edit):
    sd = torch.load(src, weights_only=True)
    edit(sd)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, dst)
    return dst


def test_config_yaml_is_found_one_folder_up(painting_models):
    cfg_path = find_config(str(painting_models["renderer"]))
    assert cfg_path and cfg_path.endswith(os.path.join("renderer", "config.yaml"))
    cfg = load_config(cfg_path)
    assert (cfg.PE_time_max, cfg.PE_time_interval, cfg.binary_threshold) == (100, 5, 0.2)


def test_renderer_missing_key_names_file_folder_and_keys(painting_models, tmp_path):
    bad = _copy_ckpt(painting_models["renderer"], tmp_path / "ckpt" / "bad.ckpt",
                     lambda sd: sd.pop("referencenet_state_dict"))
    with pytest.raises(CheckpointFormatError) as err:
        load_renderer(str(bad), str(painting_models["base"]), str(painting_models["clip"]))
    msg = str(err.value)
    assert "bad.ckpt" in msg and str(tmp_path / "ckpt") in msg
    assert "referencenet_state_dict" in msg and "unet_state_dict" in msg


def test_renderer_wrong_unet_names_the_part_and_key(painting_models, tmp_path):
    def edit(sd):
        sd["unet_state_dict"]["conv_in.weight"] = torch.zeros(32, 9, 3, 3)

    bad = _copy_ckpt(painting_models["renderer"], tmp_path / "ckpt" / "shape.ckpt", edit)
    with pytest.raises(CheckpointFormatError) as err:
        load_renderer(str(bad), str(painting_models["base"]), str(painting_models["clip"]))
    msg = str(err.value)
    assert "unet_state_dict" in msg and "conv_in.weight" in msg and "shape.ckpt" in msg


def test_rp_missing_key_and_wrong_file(painting_models, tmp_path):
    bad = _copy_ckpt(painting_models["rp"], tmp_path / "rp.ckpt", lambda sd: sd.pop("PE_state_dict"))
    with pytest.raises(CheckpointFormatError) as err:
        load_mask_generator(str(bad), str(painting_models["base"]))
    assert "PE_state_dict" in str(err.value) and "rp.ckpt" in str(err.value)
    # the renderer file picked in the mask generator loader
    with pytest.raises(CheckpointFormatError) as err:
        load_mask_generator(str(painting_models["renderer"]), str(painting_models["base"]))
    assert "RP_state_dict" in str(err.value)


def test_base_folder_and_clip_folder_errors(painting_models, tmp_path):
    empty = tmp_path / "not_sd"
    empty.mkdir()
    with pytest.raises(CheckpointFormatError) as err:
        load_renderer(str(painting_models["renderer"]), str(empty), str(painting_models["clip"]))
    assert "not_sd" in str(err.value) and "unet" in str(err.value)
    with pytest.raises(CheckpointFormatError) as err:
        load_renderer(str(painting_models["renderer"]), str(painting_models["base"]), str(empty))
    assert "CLIP" in str(err.value)


class Opaque:
    """Any non-tensor class: torch.load(weights_only=True) must refuse to build it."""


def test_pickled_objects_are_refused(painting_models, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"RP_state_dict": Opaque(), "PE_state_dict": {}}, path)
    with pytest.raises(CheckpointFormatError) as err:
        load_mask_generator(str(path), str(painting_models["base"]))
    assert "weights_only" in str(err.value)


def test_unsupported_config_is_refused(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("PE_type: 'rel'\nPE_time_max: 100\n")
    with pytest.raises(CheckpointFormatError) as err:
        load_config(str(p))
    assert "PE_type" in str(err.value) and "config.yaml" in str(err.value)


def test_threshold_schedule_as_the_official_demo():
    prob = torch.zeros(1, 1, 10, 10)
    prob[..., :5, :] = 0.45   # above 0.4 only
    prob[..., 5:, :] = 0.25   # above 0.2 only
    first, thr = choose_threshold(prob, None)
    assert thr == 0.5 and first.sum() == 0          # first update: 0.5 whatever the coverage
    prev = torch.zeros(1, 1, 10, 10)
    prev[..., :5, :] = 1
    mask, thr = choose_threshold(prob, prev)        # 0.5 empty; 0.4 = prev (IoU 1); 0.3 same; 0.2 all (IoU .5)
    assert thr == 0.2 and mask.sum() == 100


def test_rp_mask_is_binary_at_image_size(tiny_rp):
    canvas = torch.ones(1, 3, 48, 80)
    target = torch.rand(1, 3, 48, 80)
    m = tiny_rp.generate(canvas, target, "sky", 20.0)
    assert m.shape == (1, 1, 48, 80)
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    assert tiny_rp.last_threshold == 0.5


def test_streamed_load_holds_the_files_weights_and_zeros_only_the_pruned_tail(painting_models):
    from pipelines.inverse_painting.reference import pruned_reference_prefixes

    path = str(painting_models["renderer"])
    sd = torch.load(path, weights_only=True)
    r = load_renderer(path, str(painting_models["base"]), str(painting_models["clip"]), dtype=torch.float16)
    for module, key in ((r.unet, "unet_state_dict"), (r.referencenet, "referencenet_state_dict")):
        params = dict(module.named_parameters())
        assert not any(p.is_meta for p in params.values())
        assert {p.dtype for p in params.values()} == {torch.float16}  # the requested dtype, no float32 detour
        for k, v in sd[key].items():
            assert torch.equal(params[k], v.half()), k
    pruned = [k for k in dict(r.referencenet.named_parameters()) if k.startswith(pruned_reference_prefixes(r.referencenet))]
    assert pruned and all(float(r.referencenet.get_parameter(k).abs().max()) == 0 for k in pruned)
    default = load_renderer(path, str(painting_models["base"]), str(painting_models["clip"]))
    assert next(default.unet.parameters()).dtype == torch.float32  # no dtype given: float32 as before


def test_stream_unet_takes_its_sub_dict_out_of_the_checkpoint(painting_models):
    from pipelines.inverse_painting.weights import load_renderer_checkpoint, stream_unet, unet_config

    path = str(painting_models["renderer"])
    sd = load_renderer_checkpoint(path)
    unet = stream_unet(unet_config(str(painting_models["base"])), sd, "unet_state_dict", path, "renderer UNet")
    assert "unet_state_dict" not in sd and "referencenet_state_dict" in sd  # freed once the module holds it
    assert next(unet.parameters()).device.type == "cpu"


def test_old_format_pickles_load_without_mmap(painting_models, tmp_path):
    from pipelines.common.checkpoints import load_state_dict

    sd = torch.load(painting_models["rp"], weights_only=True)
    torch.save(sd, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    back = load_state_dict(str(tmp_path / "legacy.ckpt"), mmap=True)
    assert torch.equal(back["PE_state_dict"]["fc1.weight"], sd["PE_state_dict"]["fc1.weight"])

"""MimicMotion weights as published: PoseNet's layout, the unet.* / pose_net.* file merged over an
SVD folder (strict=False, but wrong keys explained), the merged-UNet variant, the Fit Check width."""
import pytest
import torch

from pipelines.common.checkpoints import load_state_dict
from pipelines.common.errors import CheckpointFormatError
from pipelines.mimicmotion.loader import load_fitcheck_pipeline, split_weights
from pipelines.mimicmotion.pose_net import PoseNet
from tests.fixtures import build_fitcheck


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    return build_fitcheck.build(tmp_path_factory.mktemp("fitcheck_models"))


def svd_unet(models):
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel.from_pretrained(models["svd"] / "unet", local_files_only=True)


def test_pose_net_has_the_official_layout_and_reaches_latent_resolution():
    net = PoseNet(320)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    convs = sorted(int(k.split(".")[1]) for k in shapes if k.startswith("conv_layers.") and k.endswith(".weight"))
    assert convs == [0, 2, 4, 6, 8, 10, 12, 14]  # SiLU between every convolution
    assert shapes["conv_layers.0.weight"] == (3, 3, 3, 3)
    assert shapes["conv_layers.2.weight"] == (16, 3, 4, 4)
    assert shapes["conv_layers.10.weight"] == (64, 32, 4, 4)
    assert shapes["conv_layers.14.weight"] == (128, 64, 3, 3)
    assert shapes["final_proj.weight"] == (320, 128, 1, 1)
    assert shapes["scale"] == (1,)
    out = net(torch.rand(2, 3, 64, 96) * 2 - 1)
    assert out.shape == (2, 320, 8, 12)  # 1/8 = the VAE latent grid


def test_fixture_file_round_trips_through_the_loader(models):
    state = load_state_dict(str(models["weights"]))
    assert all(k.startswith(("unet.", "pose_net.")) for k in state)
    assert {v.dtype for v in state.values()} == {torch.float16}
    unet_sd, pose_sd = split_weights(state, str(models["weights"]))
    assert set(unet_sd) == set(build_fitcheck.MERGED_UNET_KEYS)
    pipe = load_fitcheck_pipeline(str(models["svd"]), str(models["weights"]))
    for key, value in pipe.pose_net.state_dict().items():
        assert torch.equal(value, pose_sd[key].float()), key
    assert pipe.pose_net.final_proj.out_channels == pipe.unet.config.block_out_channels[0]
    assert pipe.mode == "MimicMotion" and pipe.conditioning_images == 1


def test_strict_false_merge_changes_exactly_the_files_tensors(models):
    base = svd_unet(models).state_dict()
    merged = load_fitcheck_pipeline(str(models["svd"]), str(models["weights"])).unet.state_dict()
    state = load_state_dict(str(models["weights"]))
    for key in base:
        if key in build_fitcheck.MERGED_UNET_KEYS:
            assert torch.equal(merged[key], state["unet." + key].float()), key
            assert not torch.allclose(merged[key], base[key], atol=1e-3), key
        else:
            assert torch.equal(merged[key], base[key]), key


def test_missing_and_foreign_files_are_explained(models, tmp_path):
    with pytest.raises(CheckpointFormatError, match="not found.*MimicMotion_1.pth.*in folder"):
        load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "MimicMotion_1.pth"))
    foreign = tmp_path / "other.pth"
    torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointFormatError) as err:
        load_fitcheck_pipeline(str(models["svd"]), str(foreign))
    message = str(err.value)
    assert "other.pth" in message and str(tmp_path) in message
    assert "unet.conv_in.weight" in message and "pose_net.final_proj.weight" in message


def test_wrong_unet_or_pose_net_tensors_are_explained(models, tmp_path):
    state = load_state_dict(str(models["weights"]))
    extra = dict(state, **{"unet.not_a_layer.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointFormatError, match="lacks.*not_a_layer"):
        load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "extra.pth"))
    reshaped = dict(state, **{"unet.conv_out.weight": torch.zeros(4, 32, 1, 1, dtype=torch.float16)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(CheckpointFormatError, match="another shape.*conv_out"):
        load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "reshaped.pth"))
    no_pose = {k: v for k, v in state.items() if k != "pose_net.scale"}
    torch.save(no_pose, tmp_path / "no_pose.pth")
    with pytest.raises(CheckpointFormatError, match="PoseNet.*missing.*scale"):
        load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "no_pose.pth"))


def test_a_non_svd_folder_is_refused(models, tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    with pytest.raises(CheckpointFormatError, match="lacks vae.*stable-video-diffusion"):
        load_fitcheck_pipeline(str(tmp_path), str(models["weights"]))


def test_merged_unet_safetensors_with_its_pose_net_file(models, tmp_path):
    from safetensors.torch import save_file

    state = load_state_dict(str(models["weights"]))
    unet = svd_unet(models).state_dict()
    unet["conv_out.bias"] = unet["conv_out.bias"] + 0.5
    merged = tmp_path / "MimicMotionMergedUnet_1-1-fp16.safetensors"
    save_file({k: v.half().contiguous() for k, v in unet.items()}, merged)
    save_file({k[len("pose_net."):]: v for k, v in state.items() if k.startswith("pose_net.")},
              tmp_path / "mimic_motion_pose_net.safetensors")
    pipe = load_fitcheck_pipeline(str(models["svd"]), str(merged))
    assert torch.allclose(pipe.unet.conv_out.bias, unet["conv_out.bias"].half().float())
    assert torch.equal(pipe.pose_net.scale, state["pose_net.scale"].float())
    (tmp_path / "mimic_motion_pose_net.safetensors").unlink()
    with pytest.raises(CheckpointFormatError, match="no PoseNet"):
        load_fitcheck_pipeline(str(models["svd"]), str(merged))


def test_a_16_channel_checkpoint_loads_as_fit_check(models, tmp_path):
    state = load_state_dict(str(models["weights"]))
    state["unet.conv_in.weight"] = torch.randn(32, 16, 3, 3).half()
    torch.save(state, tmp_path / "fitcheck.pth")
    pipe = load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "fitcheck.pth"))
    assert pipe.unet.conv_in.in_channels == 16 and pipe.unet.config.in_channels == 16
    assert pipe.mode == "Fit Check" and pipe.conditioning_images == 3
    assert torch.equal(pipe.unet.conv_in.weight, state["unet.conv_in.weight"].float())
    state["unet.conv_in.weight"] = torch.randn(32, 12, 3, 3).half()
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointFormatError, match="12 channels"):
        load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "odd.pth"))


def test_an_svd_folder_with_only_fp16_variant_files_loads(models, tmp_path):
    import shutil

    svd = tmp_path / "svd_fp16"
    shutil.copytree(models["svd"], svd)
    for part in ("unet", "vae"):
        (svd / part / "diffusion_pytorch_model.safetensors").rename(
            svd / part / "diffusion_pytorch_model.fp16.safetensors")
    pipe = load_fitcheck_pipeline(str(svd), str(models["weights"]))
    reference = load_fitcheck_pipeline(str(models["svd"]), str(models["weights"]))
    assert torch.equal(pipe.vae.decoder.conv_in.weight, reference.vae.decoder.conv_in.weight)
    (svd / "vae" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    with pytest.raises(CheckpointFormatError, match="Could not load the SVD vae.*svd_fp16/vae"):
        load_fitcheck_pipeline(str(svd), str(models["weights"]))


# --- SVD folders as downloaders fetch them for MimicMotion; the UNet built from its config ------------------------

def full_file(models, tmp_path, name="MimicMotion_1-1.pth"):
    """An official-layout file carrying every UNet tensor (as the released MimicMotion_1-1.pth does)."""
    unet = svd_unet(models).state_dict()
    state = load_state_dict(str(models["weights"]))
    state.update({"unet." + k: (v + 0.01).half() for k, v in unet.items() if "unet." + k not in state})
    torch.save(state, tmp_path / name)
    return tmp_path / name, state


def svd_without_unet_weights(models, tmp_path, keep_config=True):
    import shutil

    svd = tmp_path / ("svd_config_only" if keep_config else "svd_no_unet")
    shutil.copytree(models["svd"], svd)
    if keep_config:
        (svd / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    else:
        shutil.rmtree(svd / "unet")
    return svd


def test_an_svd_folder_with_only_unet_config_loads_a_full_file(models, tmp_path):
    from pipelines.mimicmotion import loader

    path, state = full_file(models, tmp_path)
    svd = svd_without_unet_weights(models, tmp_path)
    assert loader.is_svd_folder(str(svd))
    pipe = load_fitcheck_pipeline(str(svd), str(path))
    unet = pipe.unet.state_dict()
    assert len(unet) == len([k for k in state if k.startswith("unet.")])
    assert all(torch.equal(unet[k], state["unet." + k].float()) for k in unet)
    assert not any(p.is_meta for p in pipe.unet.parameters())
    partial = str(models["weights"])  # only a few UNet tensors: the rest would have to come from unet/
    with pytest.raises(CheckpointFormatError, match="only part of the UNet.*no UNet weights"):
        load_fitcheck_pipeline(str(svd), partial)


def test_an_svd_folder_without_unet_uses_the_shipped_config(models, tmp_path, monkeypatch):
    import json

    from pipelines.mimicmotion import loader

    path, state = full_file(models, tmp_path)
    svd = svd_without_unet_weights(models, tmp_path, keep_config=False)
    assert loader.is_svd_folder(str(svd))  # model_index.json names the SVD pipeline
    tiny_config = tmp_path / "tiny_unet.json"
    tiny_config.write_text(json.dumps({"_class_name": loader.UNET_CLASS, **build_fitcheck.UNET_CONFIG}))
    monkeypatch.setattr(loader, "BUILTIN_UNET_CONFIG", str(tiny_config))  # the shipped one is full size
    pipe = load_fitcheck_pipeline(str(svd), str(path))
    assert torch.equal(pipe.unet.conv_out.weight, state["unet.conv_out.weight"].float())


def test_the_shipped_config_is_the_svd_xt_unet():
    from diffusers import UNetSpatioTemporalConditionModel

    from pipelines.mimicmotion import loader

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(loader.unet_config("/nonexistent"))
    shapes = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert len(shapes) == 1428  # the tensors of the released SVD-XT / MimicMotion UNet
    assert shapes["conv_in.weight"] == (320, 8, 3, 3) and shapes["conv_out.weight"] == (4, 320, 3, 3)
    assert shapes["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    assert shapes["add_embedding.linear_1.weight"] == (1280, 768)  # 3 added time ids x 256


def test_folder_kinds_the_dropdown_lists(tmp_path):
    import json

    from pipelines.mimicmotion.loader import is_svd_folder

    def folder(name, index=None, unet_class=None):
        path = tmp_path / name
        path.mkdir()
        if index is not None:
            (path / "model_index.json").write_text(json.dumps(index))
        if unet_class is not None:
            (path / "unet").mkdir()
            (path / "unet" / "config.json").write_text(json.dumps({"_class_name": unet_class}))
        return str(path)

    svd_index = build_fitcheck.MODEL_INDEX
    assert is_svd_folder(folder("full", svd_index, "UNetSpatioTemporalConditionModel"))
    assert is_svd_folder(folder("no_unet", svd_index))
    assert is_svd_folder(folder("no_unet_other_index", {"_class_name": "Custom", "unet": [
        "diffusers", "UNetSpatioTemporalConditionModel"]}))
    assert not is_svd_folder(folder("sd", {"_class_name": "StableDiffusionPipeline"}, "UNet2DConditionModel"))
    assert not is_svd_folder(folder("sd_no_unet", {"_class_name": "StableDiffusionPipeline", "unet": [
        "diffusers", "UNet2DConditionModel"]}))
    assert not is_svd_folder(folder("svd_index_wrong_unet", svd_index, "UNet2DConditionModel"))


def test_a_complete_file_is_used_in_place_without_reading_the_svd_unet(models, tmp_path, monkeypatch):
    from pipelines.mimicmotion import loader

    path, _ = full_file(models, tmp_path)
    unet_sd, _ = split_weights(load_state_dict(str(path)), str(path))
    pointers = {k: v.data_ptr() for k, v in unet_sd.items()}
    monkeypatch.setattr(loader, "_read_svd_tensors", lambda *a: pytest.fail("read the SVD UNet weights"))
    unet, merged = loader.build_unet(str(models["svd"]), unet_sd, str(path), torch.float16)
    assert merged == len(pointers) and not unet_sd  # the file's dict was emptied into the model
    assert all(p.data_ptr() == pointers[k] for k, p in unet.state_dict().items())  # no copies


@pytest.mark.parametrize("name,version", [("MimicMotion_1-1.pth", "1.1"), ("MimicMotion_1.pth", "1.0"),
                                          ("MimicMotion.pth", "1.0"), ("MimicMotionMergedUnet_1-1-fp16.safetensors", "1.1"),
                                          ("MimicMotionMergedUnet_1-0-fp16.safetensors", "1.0"),
                                          ("mimicmotion_v1.1.pth", "1.1"), ("MimicMotion_11.pth", "1.0"),
                                          ("FitCheck_step20000.pth", None)])
def test_version_from_the_released_file_names(name, version):
    from pipelines.mimicmotion.loader import mimicmotion_version

    assert mimicmotion_version(f"/models/{name}") == version


def test_tile_frames_default_by_model_version(models, tmp_path):
    import shutil

    assert load_fitcheck_pipeline(str(models["svd"]), str(models["weights"])).tile_frames(0) == 72  # MimicMotion_1-1.pth
    v10 = tmp_path / "MimicMotion_1.pth"
    shutil.copy(models["weights"], v10)
    pipe = load_fitcheck_pipeline(str(models["svd"]), str(v10))
    assert pipe.tile_frames(0) == 16 and pipe.tile_frames(5) == 5
    state = load_state_dict(str(models["weights"]))
    state["unet.conv_in.weight"] = torch.randn(32, 16, 3, 3).half()
    torch.save(state, tmp_path / "MimicMotion_1-1_fitcheck.pth")  # a Fit Check checkpoint: thesis tiles
    assert load_fitcheck_pipeline(str(models["svd"]), str(tmp_path / "MimicMotion_1-1_fitcheck.pth")).tile_frames() == 16

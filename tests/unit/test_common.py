"""pipelines/common: conversions, checkpoint loading errors, progress."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pipelines.common import CheckpointFormatError, InputError, Progress
from pipelines.common.checkpoints import load_into, load_state_dict, require_keys, strip_prefix, sub_dict
from pipelines.common.images import (bchw_to_image, image_to_bchw, image_to_pils, mask_to_b1hw, match_batch,
                                     pil_to_image, require_same_size, to_signed, to_unsigned)


def test_image_roundtrips_through_bchw_and_pil():
    img = torch.rand(2, 5, 7, 3)
    assert image_to_bchw(img).shape == (2, 3, 5, 7)
    assert torch.equal(bchw_to_image(image_to_bchw(img)), img)
    back = pil_to_image(image_to_pils(img)[1])
    assert back.shape == (1, 5, 7, 3) and (back - img[1:2]).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.allclose(to_unsigned(to_signed(img)), img)


def test_alpha_is_dropped_and_bad_shapes_are_named():
    assert image_to_bchw(torch.rand(1, 4, 4, 4)).shape == (1, 3, 4, 4)
    with pytest.raises(InputError, match=r"\[B,H,W,C\]"):
        image_to_bchw(torch.rand(4, 4))
    assert mask_to_b1hw(torch.rand(4, 6)).shape == (1, 1, 4, 6)


def test_batch_and_size_checks():
    x = torch.rand(1, 4, 4, 3)
    assert match_batch(x, 3, "mask").shape[0] == 3
    with pytest.raises(InputError, match="batch of 2"):
        match_batch(torch.rand(2, 4, 4, 3), 3, "mask")
    with pytest.raises(InputError, match="6x4"):
        require_same_size(torch.rand(1, 4, 6, 3), torch.rand(1, 4, 4), "image", "mask")


def test_safetensors_and_safe_pickle_load(tmp_path):
    sd = {"module.a.weight": torch.ones(2, 2), "module.b": torch.zeros(3)}
    save_file(sd, tmp_path / "w.safetensors")
    torch.save({"state": sd}, tmp_path / "w.pth")
    assert set(load_state_dict(tmp_path / "w.safetensors")) == set(sd)
    assert set(load_state_dict(tmp_path / "w.pth")["state"]) == set(sd)
    assert set(strip_prefix(sd, "module.")) == {"a.weight", "b"}
    assert set(sub_dict(sd, "module.a.")) == {"weight"}


class Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_pickles_with_code_are_refused(tmp_path):
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointFormatError, match="weights_only=True"):
        load_state_dict(tmp_path / "evil.pth")


def test_missing_and_corrupt_files_name_file_and_folder(tmp_path):
    with pytest.raises(CheckpointFormatError) as e:
        load_state_dict(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(e.value) and str(tmp_path) in str(e.value)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointFormatError, match="bad.safetensors"):
        load_state_dict(tmp_path / "bad.safetensors")


def test_key_errors_list_expected_keys(tmp_path):
    with pytest.raises(CheckpointFormatError, match="unet_state_dict"):
        require_keys({"other": 1}, ["unet_state_dict", "PE_state_dict"], tmp_path / "c.ckpt", "renderer")
    lin = torch.nn.Linear(2, 3)
    with pytest.raises(CheckpointFormatError, match=r"another shape.*weight"):
        load_into(lin, {"weight": torch.zeros(2, 2), "bias": torch.zeros(3)}, "x.pt", "adapter")
    with pytest.raises(CheckpointFormatError, match="1 missing"):
        load_into(lin, {"weight": torch.zeros(3, 2)}, "x.pt", "adapter")
    load_into(lin, {"weight": torch.zeros(3, 2)}, "x.pt", "adapter", allow_missing=("bias",))
    assert lin.weight.abs().sum() == 0


def test_progress_reports_each_step_and_nested_loops():
    seen = []
    p = Progress(3, lambda d, t, prev: seen.append((d, t, prev)))
    p.step()
    child = p.child(2)
    child.step(preview="img")
    p.step(5)
    assert seen == [(1, 3, None), (1, 3, "img"), (3, 3, None)]


def test_a_cancel_raised_by_the_callback_stops_the_loop():
    def cancel(done, total, preview):
        if done == 2:
            raise InterruptedError("cancelled")

    p = Progress(5, cancel)
    steps = 0
    with pytest.raises(InterruptedError):
        for _ in range(5):
            p.step()
            steps += 1
    assert steps == 1


def test_cover_crop_scales_to_cover_and_keeps_the_middle():
    from pipelines.common.images import cover_crop

    tall = torch.zeros(1, 3, 100, 50)
    tall[:, 0] = torch.linspace(0, 1, 100).view(100, 1)  # red grows downwards
    fitted = cover_crop(tall, 64, 32)  # 50 -> 64 wide, so 128 tall: keep the middle 32 rows
    assert fitted.shape == (1, 3, 32, 64)
    assert abs(float(fitted[0, 0].mean()) - 0.5) < 0.02
    assert float(fitted[0, 0, -1].mean() - fitted[0, 0, 0].mean()) == pytest.approx(31 / 128, abs=0.03)


def test_clip_preprocess_matches_the_transformers_processor(tmp_path):
    import json

    import numpy as np
    from transformers import CLIPImageProcessor

    from pipelines.common.clip import ClipPreprocess

    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "do_resize": True,
         "do_center_crop": True, "do_normalize": True, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.3, 0.25],
         "image_processor_type": "CLIPImageProcessor"}))
    # smooth and not square (300 x 451): geometry and normalisation are compared, not resampling filters
    yy, xx = np.mgrid[0:300, 0:451] / 300.0
    photo = (np.stack([np.sin(3 * xx) * 0.4 + 0.5, yy * 0.8 + 0.1, np.cos(2 * (xx + yy)) * 0.3 + 0.5], -1)
             * 255).round().astype(np.uint8)
    reference = CLIPImageProcessor.from_pretrained(str(tmp_path))(images=photo, return_tensors="pt").pixel_values
    ours = ClipPreprocess.from_folder(str(tmp_path), 224)(torch.from_numpy(photo / 255.0).permute(2, 0, 1)[None].float())
    assert ours.shape == reference.shape == (1, 3, 224, 224)
    assert float((ours - reference).abs().mean()) < 0.02


def test_mask_box_is_the_true_rows_and_columns_grown_and_clipped():
    from pipelines.common.images import mask_box

    m = np.zeros((6, 8), dtype=bool)
    m[2, 3] = m[3, 5] = True
    assert mask_box(m) == (2, 4, 3, 6)
    assert mask_box(m, reach=1) == (1, 5, 2, 7)
    assert mask_box(m, reach=3) == (0, 6, 0, 8)  # clipped to the mask
    assert mask_box(torch.from_numpy(m), reach=1) == (1, 5, 2, 7)
    assert mask_box(np.zeros((3, 3), dtype=bool)) is None

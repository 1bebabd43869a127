"""Total Selfie per-capture fine-tuning: augmentations, masked loss, UNet-only training,
the saved file and loading it back, cancel; on tiny random diffusers modules."""
import sys
from types import SimpleNamespace

import pytest
import torch

from pipelines.common.errors import CheckpointFormatError, InputError
from pipelines.common.progress import Progress
from pipelines.selfie_finetune import apply_finetuned_unet
from pipelines.selfie_finetune.augment import PART_BANDS, SELFIE_PARTS, AugmentedCapture, mask_box
from pipelines.selfie_finetune.train import (diffusion_loss, encode_samples, finetune_pipeline, finetune_unet,
                                             load_capture_files, masked_mse, training_scheduler)
from pipelines.selfie_finetune.weights import read_metadata

SIZE = 32  # image side; the tiny VAE halves it -> 16x16 latents
SELFIE_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0))


pytestmark = pytest.mark.usefixtures("one_thread")


def make_capture(count=8, seed=0, people=1, inpaint_mask=None):
    """Grey background; standing figures' masks (candidates I_n); four solid-colour selfies of mixed sizes."""
    background = torch.full((3, SIZE, SIZE), 0.5)
    masks = torch.zeros(people, SIZE, SIZE)
    for p in range(people):
        masks[p, 6:26, 12 + p:20 + p] = 1.0
    selfies = [torch.tensor(c).view(3, 1, 1).expand(3, 12 + 4 * i, 10).clone() for i, c in enumerate(SELFIE_COLOURS)]
    return AugmentedCapture(background, masks, selfies, count=count, seed=seed, inpaint_mask=inpaint_mask)


class TinyConditionEncoder(torch.nn.Module):
    """Stands in for the selfie encoder: four IMAGEs [1,h,w,3] -> [1, 4, 32] tokens."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 32)

    def forward(self, selfies):
        pooled = torch.cat([s.mean(dim=(1, 2)) for s in selfies])
        return self.proj(pooled)[None]


def tiny_pipe():
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=9, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), latent_channels=4,
                        norm_num_groups=8, sample_size=SIZE)
    encoder = TinyConditionEncoder()
    return SimpleNamespace(unet=unet.eval(), vae=vae.eval(), image_encoder=encoder, scheduler=DDPMScheduler(),
                           encode_selfies=encoder, mode="trained")


def state_of(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b, atol=0.0):
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


# --- augmentations ---------------------------------------------------------------------------

def test_augmentations_count_shape_and_background_outside_the_mask():
    capture = make_capture(count=20, people=2)
    assert len(capture) == 20
    # M defaults to the candidates' person box x1.1: rows 6-25, columns 12-20 -> rows 5-26, columns 11-21
    expected = torch.zeros(1, SIZE, SIZE)
    expected[:, 5:27, 11:22] = 1
    assert torch.equal(capture.mask, expected)
    for index, placement in enumerate(capture.placements):
        image, mask = capture[index]
        assert image.shape == (3, SIZE, SIZE) and torch.equal(mask, capture.mask)
        # Only the selfie is pasted, and only inside M: the target is the background elsewhere.
        assert torch.equal(image * (1 - mask), capture.background * (1 - mask))
        changed = (image - capture.background).abs().amax(0) > 1e-6
        colour = torch.tensor(SELFIE_COLOURS[placement.part]).view(3, 1)
        assert torch.allclose(image[:, changed], colour.expand(3, int(changed.sum())), atol=1e-4)
        box = placement.person_box
        assert 0 <= box.top and box.bottom <= SIZE and 0 <= box.left and box.right <= SIZE
        # The chosen selfie's colour sits at its body part's band centre when that lies in M.
        sb = placement.selfie_box
        y, x = sb.top + sb.height // 2, sb.left + sb.width // 2
        if 0 <= y < SIZE and 0 <= x < SIZE and mask[0, y, x] == 1:
            assert torch.allclose(image[:, y, x], colour[:, 0], atol=1e-4)
    assert {p.part for p in capture.placements} == set(range(len(SELFIE_PARTS)))
    assert {p.person for p in capture.placements} == {0, 1}


def test_a_given_inpainting_mask_bounds_the_paste():
    given = torch.zeros(SIZE, SIZE)
    given[10:20, 10:22] = 1
    capture = make_capture(count=12, inpaint_mask=given)
    for index in range(len(capture)):
        image, mask = capture[index]
        assert torch.equal(mask[0], given)
        assert torch.equal(image * (1 - mask), capture.background * (1 - mask))


def test_selfie_band_follows_the_person_box():
    capture = make_capture(count=10)
    for p in capture.placements:
        start, end = PART_BANDS[p.part]
        band_centre = p.person_box.top + (start + end) / 2 * p.person_box.height
        assert abs(p.selfie_box.top + p.selfie_box.height / 2 - band_centre) <= 1
        assert abs(p.selfie_box.height - (end - start) * p.person_box.height) <= 1
        selfie = capture.selfies[p.part]
        assert abs(p.selfie_box.width / p.selfie_box.height - selfie.shape[2] / selfie.shape[1]) < 0.35


def test_augmentations_are_deterministic_by_seed():
    a, b, c = make_capture(seed=3), make_capture(seed=3), make_capture(seed=4)
    assert a.placements == b.placements
    assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(len(a)))
    assert a.placements != c.placements


def test_augmentation_inputs_are_checked():
    capture = make_capture()
    background, masks = capture.background, capture.person_masks
    with pytest.raises(InputError, match="4 selfies"):
        AugmentedCapture(background, masks, capture.selfies[:3])
    with pytest.raises(InputError, match="empty"):
        AugmentedCapture(background, torch.zeros_like(masks), capture.selfies)
    with pytest.raises(InputError, match="background's size"):
        AugmentedCapture(background[:, :16], masks, capture.selfies)
    with pytest.raises(InputError, match="inpainting mask is empty"):
        AugmentedCapture(background, masks, capture.selfies, inpaint_mask=torch.zeros(SIZE, SIZE))


def test_mask_box():
    mask = torch.zeros(10, 12)
    mask[2:5, 3:9] = 1
    box = mask_box(mask)
    assert (box.top, box.left, box.height, box.width) == (2, 3, 3, 6)


# --- loss ------------------------------------------------------------------------------------

def test_masked_mse_has_no_gradient_outside_the_mask():
    pred = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randn(2, 4, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 1:4] = 1
    loss = masked_mse(pred, target, mask)
    loss.backward()
    inside = mask.expand_as(pred) > 0
    assert pred.grad[~inside].abs().max() == 0 and pred.grad[inside].abs().min() > 0
    assert torch.isclose(loss, ((pred - target) ** 2)[inside].mean())


def test_training_loss_ignores_the_unet_output_outside_the_inpainting_region():
    pipe = tiny_pipe()
    capture = make_capture(count=4)
    encoded = encode_samples(pipe.vae, capture, 4, torch.device("cpu"), Progress(1))
    outputs = []
    hook = pipe.unet.register_forward_hook(lambda _m, _i, out: outputs.append(out.sample.retain_grad() or out.sample))
    cond = pipe.encode_selfies(capture.selfie_images).detach()
    loss = diffusion_loss(pipe.unet, training_scheduler(pipe.scheduler), encoded, torch.arange(4), cond,
                          torch.Generator().manual_seed(0))
    loss.backward()
    hook.remove()
    grad = outputs[0].grad
    outside = encoded.loss_mask.expand_as(grad) == 0
    assert outside.any() and (~outside).any()
    assert grad[outside].abs().max() == 0 and grad[~outside].abs().max() > 0
    # The region is the mask's latent footprint, and the keep-mask channel is its complement.
    assert torch.equal(encoded.loss_mask, torch.nn.functional.adaptive_max_pool2d(
        torch.stack([capture[i][1] for i in range(4)]), 16))
    assert ((encoded.keep_mask == 1) | (encoded.loss_mask == 1)).all()


# --- training --------------------------------------------------------------------------------

def fixed_batch_loss(pipe, unet, capture, encoded):
    """Masked loss on the same noise/timesteps each time (averaged over a few draws)."""
    cond = pipe.encode_selfies(capture.selfie_images).detach()
    schedule = training_scheduler(pipe.scheduler)
    with torch.no_grad():
        return sum(diffusion_loss(unet, schedule, encoded, torch.arange(len(capture)), cond,
                                  torch.Generator().manual_seed(s)).item() for s in range(4)) / 4


def test_finetune_trains_only_the_unet_and_lowers_the_masked_loss():
    pipe = tiny_pipe()
    capture = make_capture(count=4)
    encoded = encode_samples(pipe.vae, capture, 4, torch.device("cpu"), Progress(1))
    vae_before, enc_before, unet_before = state_of(pipe.vae), state_of(pipe.image_encoder), state_of(pipe.unet)
    loss_before = fixed_batch_loss(pipe, pipe.unet, capture, encoded)
    steps = []
    result = finetune_unet(pipe.unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, capture, steps=12, lr=1e-3,
                           batch_size=4, progress=Progress(12, lambda d, t, _p: steps.append((d, t))))
    loss_after = fixed_batch_loss(pipe, pipe.unet, capture, encoded)
    assert len(result.losses) == 12 and all(l == l for l in result.losses)
    assert [d for d, _t in steps if d] == list(range(1, 13))  # one bar step per optimisation step
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)
    assert same_state(state_of(pipe.vae), vae_before) and same_state(state_of(pipe.image_encoder), enc_before)
    assert not same_state(state_of(pipe.unet), unet_before)
    assert not any(p.requires_grad for p in pipe.unet.parameters())


def test_sizes_the_model_cannot_take_are_explained():
    pipe = tiny_pipe()
    background = torch.rand(3, 30, 30)
    masks = torch.zeros(1, 30, 30)
    masks[0, 5:20, 10:18] = 1
    capture = AugmentedCapture(background, masks, make_capture().selfies, count=2)
    with pytest.raises(InputError, match="multiples of 4"):
        finetune_unet(pipe.unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, capture, steps=1)


# --- saving, loading, cancel ----------------------------------------------------------------

def test_saved_file_round_trips_into_a_copy_of_the_pipe(tmp_path):
    pipe = tiny_pipe()
    before = state_of(pipe.unet)
    out = tmp_path / "capture.safetensors"
    pipe.source = "tiny"
    tuned = finetune_pipeline(pipe, make_capture(count=4), out, steps=2, lr=1e-3, batch_size=2)
    assert same_state(state_of(pipe.unet), before)  # the input pipe is untouched
    assert tuned is not pipe and tuned.vae is pipe.vae and tuned.unet is not pipe.unet
    meta = read_metadata(out)
    assert meta["format"] == "recompose_selfie_finetune" and meta["kind"] == "unet"
    assert (meta["base"], meta["steps"], meta["augmentations"], meta["mode"]) == ("tiny", "2", "4", "trained")
    loaded = apply_finetuned_unet(pipe, out)
    assert same_state(state_of(pipe.unet), before)
    assert same_state(state_of(loaded.unet), state_of(tuned.unet), atol=1e-3)  # saved as float16
    assert not same_state(state_of(loaded.unet), before, atol=1e-5)


def test_files_that_do_not_fit_are_explained(tmp_path):
    from safetensors.torch import save_file

    pipe = tiny_pipe()
    vae_file = tmp_path / "vae.safetensors"
    save_file({k: v.contiguous() for k, v in pipe.vae.state_dict().items()}, str(vae_file))
    with pytest.raises(CheckpointFormatError, match=r"vae\.safetensors.*Expected keys like: conv_in"):
        apply_finetuned_unet(pipe, vae_file)
    other = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    other["conv_in.weight"] = torch.zeros(32, 4, 3, 3)  # a 4-channel (non-inpainting) UNet
    wrong_shape = tmp_path / "sd_unet.safetensors"
    save_file(other, str(wrong_shape))
    with pytest.raises(CheckpointFormatError, match="another shape .*conv_in.weight"):
        apply_finetuned_unet(pipe, wrong_shape)
    with pytest.raises(CheckpointFormatError, match="not found"):
        apply_finetuned_unet(pipe, tmp_path / "missing.safetensors")


def test_cancel_stops_cleanly(tmp_path):
    pipe = tiny_pipe()
    before = state_of(pipe.unet)
    out = tmp_path / "cancelled.safetensors"
    done = []

    def cancel_at_three(step, _total, _preview):
        done.append(step)
        if step == 3:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        finetune_pipeline(pipe, make_capture(count=4), out, steps=50, lr=1e-3, batch_size=2,
                          progress=Progress(50, cancel_at_three))
    assert max(done) == 3 and not out.exists() and not list(tmp_path.iterdir())
    assert same_state(state_of(pipe.unet), before)


def test_lora_without_peft_is_explained(monkeypatch):
    pipe = tiny_pipe()
    monkeypatch.setitem(sys.modules, "peft", None)  # importing it now fails as if not installed
    with pytest.raises(InputError, match="peft"):
        finetune_unet(pipe.unet, pipe.vae, pipe.scheduler, pipe.encode_selfies, make_capture(count=2), steps=1,
                      lora_rank=4)


def test_lora_trains_adapters_only_and_round_trips(tmp_path):
    pytest.importorskip("peft")
    pipe = tiny_pipe()
    before = state_of(pipe.unet)
    out = tmp_path / "lora.safetensors"
    tuned = finetune_pipeline(pipe, make_capture(count=4), out, steps=3, lr=1e-2, batch_size=2, lora_rank=4)
    assert same_state(state_of(pipe.unet), before)
    tuned_state = state_of(tuned.unet)
    base_keys = [k for k in tuned_state if "lora_" not in k]
    assert all(torch.equal(tuned_state[k], before[k.replace(".base_layer", "")]) for k in base_keys)
    assert read_metadata(out)["kind"] == "lora"
    loaded = apply_finetuned_unet(pipe, out)
    capture = make_capture(count=2)
    encoded = encode_samples(pipe.vae, capture, 2, torch.device("cpu"), Progress(1))
    assert fixed_batch_loss(pipe, loaded.unet, capture, encoded) == pytest.approx(
        fixed_batch_loss(pipe, tuned.unet, capture, encoded), rel=1e-5)
    assert fixed_batch_loss(pipe, loaded.unet, capture, encoded) != fixed_batch_loss(pipe, pipe.unet, capture, encoded)


def test_capture_files_take_the_mask_from_alpha(tmp_path):
    from PIL import Image
    import numpy as np

    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[4:28, 10:22] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "person.png")
    Image.new("RGB", (SIZE, SIZE), (128, 128, 128)).save(tmp_path / "bg.png")
    selfies = []
    for i, colour in enumerate(SELFIE_COLOURS):
        selfies.append(str(tmp_path / f"s{i}.png"))
        Image.new("RGB", (10, 12), tuple(int(c * 255) for c in colour)).save(selfies[-1])
    capture = load_capture_files(str(tmp_path / "bg.png"), [str(tmp_path / "person.png")], [], selfies, 5, 0)
    box = mask_box(capture.person_masks[0])
    assert (box.top, box.left, box.height, box.width) == (4, 10, 24, 12) and len(capture) == 5
    Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "opaque.png")
    with pytest.raises(InputError, match="person-mask"):
        load_capture_files(str(tmp_path / "bg.png"), [str(tmp_path / "opaque.png")], [], selfies, 5, 0)


# --- the real pipeline folder, through the CLI ------------------------------------------------

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from tests.fixtures.build_selfie_inpaint import build

    return build(tmp_path_factory.mktemp("models"))["selfie2full"]


def write_capture_files(folder, size=64):
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / "bg.png")
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[10:58, 24:40] = (220, 60, 60, 255)
    Image.fromarray(rgba, "RGBA").save(folder / "person.png")
    selfies = []
    for i, colour in enumerate(SELFIE_COLOURS):
        selfies.append(str(folder / f"selfie{i}.png"))
        Image.new("RGB", (40, 48), tuple(int(c * 255) for c in colour)).save(selfies[-1])
    return selfies


def test_cli_fine_tunes_the_folder_and_the_file_loads_into_the_pipeline(tiny_folder, tmp_path, capsys):
    from pipelines.selfie_finetune.train import main
    from pipelines.selfie_inpaint.loader import load_selfie_pipeline

    selfies = write_capture_files(tmp_path)
    out = tmp_path / "capture.safetensors"
    main(["--pipeline", str(tiny_folder), "--background", str(tmp_path / "bg.png"), "--person",
          str(tmp_path / "person.png"), "--selfies", *selfies, "--out", str(out), "--steps", "3",
          "--augmentations", "6", "--lr", "1e-3"])
    assert "saved" in capsys.readouterr().out
    meta = read_metadata(out)
    assert (meta["base"], meta["steps"], meta["mode"]) == ("pbe_selfie2full", "3", "trained")
    pipe = load_selfie_pipeline(tiny_folder)
    before = state_of(pipe.unet)
    tuned = apply_finetuned_unet(pipe, out)
    assert same_state(state_of(pipe.unet), before)
    assert not same_state(state_of(tuned.unet), before, atol=1e-5)
    background = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 8:60, 20:44] = 1
    selfie_images = [torch.rand(1, 32, 32, 3) for _ in range(4)]
    base_image = pipe.inpaint(background, mask, selfie_images, steps=2, cfg=1.0)
    tuned_image = tuned.inpaint(background, mask, selfie_images, steps=2, cfg=1.0)
    assert tuned_image.shape == base_image.shape == (1, 64, 64, 3)
    assert not torch.allclose(tuned_image, base_image)

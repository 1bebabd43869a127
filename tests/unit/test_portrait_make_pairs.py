"""The paired-data CLI (thesis 5.2.2, 5.5.1) on a tiny random SD1.5 diffusers folder: the official dataset layout
(train/condition/<i>.png, train/gt/<i>.png, train/prompt.json as in bytedance/feature-preserve-portrait-editing's
data/outfit), resuming without redoing pairs, the folder refusals, eq. 5.2 per step, the optional OpenPose
ControlNet, and the MCDM trainer reading what it writes."""
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pipelines.common import InputError
from pipelines.portrait_edit import make_pairs, train
from tests.fixtures.build_painting import write_sd15_diffusers

SIDE, STEPS = 64, 3
ARGS = ["--size", str(SIDE), "--steps", str(STEPS), "--seed", "7", "--subjects", "woman",
        "--sources", "normal costume", "--targets", "Santa Claus costume"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return write_sd15_diffusers(tmp_path_factory.mktemp("sd15") / "base")


@pytest.fixture(scope="module")
def openpose(base, tmp_path_factory):
    """A ControlNet copied from the tiny UNet, its zero convolutions made non-zero so the pose matters."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(1)
    net = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(base / "unet"),
                                    conditioning_embedding_out_channels=(8, 8, 8, 16))
    with torch.no_grad():
        for conv in (*net.controlnet_down_blocks, net.controlnet_mid_block):
            conv.weight.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("openpose") / "control"
    net.save_pretrained(folder)
    return folder


def _run(base, out, count, *extra):
    make_pairs.main(["--base", str(base), "--out", str(out), "--count", str(count), *ARGS, *extra])


def _records(out):
    return [json.loads(line) for line in (out / "train" / "prompt.json").read_text().splitlines()]


def _pixels(path):
    return np.asarray(Image.open(path))


def test_writes_the_official_layout_resumes_and_the_trainer_reads_it(base, tmp_path, capsys, one_thread):
    out = tmp_path / "data"
    _run(base, out, 2)
    assert capsys.readouterr().out.strip().endswith("2 new pairs in " + str(out) + " (2 asked)")
    first = {p: p.stat().st_mtime_ns for p in (out / "train").rglob("*.png")}
    assert sorted(p.relative_to(out).as_posix() for p in first) == [
        "train/condition/0.png", "train/condition/1.png", "train/gt/0.png", "train/gt/1.png"]

    _run(base, out, 3)  # resumed: only pair 2 is new
    assert capsys.readouterr().out.strip().endswith("1 new pairs in " + str(out) + " (3 asked)")
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())
    assert sorted(p.name for p in (out / "train").iterdir()) == ["condition", "gt", "prompt.json"]
    assert _records(out) == [{"source": f"condition/{i}.png", "target": f"gt/{i}.png",
                              "prompt": "a woman, Santa Claus costume", "source_prompt": "a woman, normal costume",
                              "seed": 7 + i} for i in range(3)]
    for i in range(3):
        x_a, x_b = _pixels(out / "train" / "condition" / f"{i}.png"), _pixels(out / "train" / "gt" / f"{i}.png")
        assert x_a.shape == x_b.shape == (SIDE, SIDE, 3) and x_a.dtype == np.uint8
        assert x_a.std() > 1 and not np.array_equal(x_a, x_b)
    assert not np.array_equal(_pixels(out / "train" / "gt" / "0.png"), _pixels(out / "train" / "gt" / "1.png"))

    _run(base, out, 3)
    assert capsys.readouterr().out.strip().endswith("0 new pairs in " + str(out) + " (3 asked)")

    # a fresh folder made in one go holds the same pair 2: each pair depends on its own seed only
    fresh = tmp_path / "fresh"
    _run(base, fresh, 3)
    for sub in ("condition", "gt"):
        assert np.array_equal(_pixels(out / "train" / sub / "2.png"), _pixels(fresh / "train" / sub / "2.png"))

    # the MCDM trainer reads the folder (its official-layout reader, then a step on it)
    from diffusers import DDPMScheduler

    from tests.unit.test_portrait_train import _stub_encoders, tiny_mcdm

    assert [r["target"] for r in train.read_records(str(out))] == ["gt/0.png", "gt/1.png", "gt/2.png"]
    assert train.load_image(str(out), "gt/2.png").shape == (3, 512, 512)
    model = tiny_mcdm()
    losses = train.train(model, _stub_encoders(), DDPMScheduler(), str(out), str(tmp_path / "ckpt"), steps=1,
                         batch_size=2)
    assert len(losses) == 1 and np.isfinite(losses[0]) and (tmp_path / "ckpt" / "checkpoint-1" / "unet.pth").is_file()


def test_refuses_folders_it_did_not_write_and_a_resume_with_other_settings(base, tmp_path, one_thread):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.png").write_bytes(b"not ours")
    with pytest.raises(InputError, match="not a pair dataset"):
        _run(base, other, 1)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.png"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        _run(base, tmp_path / "file", 1)

    out = tmp_path / "data"
    _run(base, out, 1)
    with pytest.raises(InputError, match="pair 0 was written with another seed"):
        make_pairs.main(["--base", str(base), "--out", str(out), "--count", "2", *ARGS, "--seed", "8"])
    with pytest.raises(InputError, match="pair 0 was written with another prompt"):
        make_pairs.main(["--base", str(base), "--out", str(out), "--count", "2", *ARGS, "--targets", "angry"])
    assert len(_records(out)) == 1
    (base.parent / "broken" / "unet").mkdir(parents=True)
    with pytest.raises(InputError, match="lacks vae, text_encoder, tokenizer, scheduler/"):
        make_pairs.main(["--base", str(base.parent / "broken"), "--out", str(tmp_path / "x"), "--count", "1"])


def test_prompt_lists_from_json_then_the_command_line(tmp_path):
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps({"subjects": ["man"], "targets": ["angry", "crying"]}))
    assert make_pairs.prompt_lists(str(lists), sources=["neutral expression"]) == {
        "subjects": ["man"], "sources": ["neutral expression"], "targets": ["angry", "crying"]}
    # nothing given: the costume lists of thesis 5.5.1
    assert make_pairs.prompt_lists() == {"subjects": ["man", "woman"], "sources": ["normal costume"],
                                         "targets": ["cute flower costume", "cute white sheep costume",
                                                     "Santa Claus costume", "traditional golden palace costume"]}
    lists.write_text(json.dumps({"subject": ["man"]}))
    with pytest.raises(InputError, match="keys subjects, sources, targets"):
        make_pairs.prompt_lists(str(lists))
    with pytest.raises(InputError, match="'targets' must be a non-empty list"):
        make_pairs.prompt_lists(targets=[" "])


def test_pair_draws_are_seeded_per_pair_and_cover_the_lists():
    lists = {"subjects": ["man", "woman"], "sources": ["normal costume"], "targets": ["a", "b", "c"]}
    specs = [make_pairs.plan_pair(i, 100, lists, pose_count=5) for i in range(300)]
    assert [s.seed for s in specs[:3]] == [100, 101, 102]
    assert {s.subject for s in specs} == {"man", "woman"} and {s.target for s in specs} == {"a", "b", "c"}
    assert {s.pose for s in specs} == set(range(5))
    again = make_pairs.plan_pair(42, 100, lists, pose_count=5)
    assert (again.subject, again.target, again.pose) == (specs[42].subject, specs[42].target, specs[42].pose)
    assert specs[0].prompts == ("the same " + specs[0].subject + " on the left and right",
                                f"a {specs[0].subject}, normal costume", f"a {specs[0].subject}, {specs[0].target}")


def test_every_step_follows_eq_5_2_over_one_batch_of_four_prompts(base, one_thread):
    sampler = make_pairs.load_sampler(str(base), "cpu")
    seen = {"prompts": [], "unet": [], "stepped": []}
    text = sampler.text
    sampler.text = lambda prompts: seen["prompts"].append(list(prompts)) or text(prompts)
    sampler.unet.register_forward_hook(lambda _m, _i, out: seen["unet"].append(out.sample.detach().clone()))
    step = sampler.scheduler.step
    sampler.scheduler.step = lambda eps, *a, **k: seen["stepped"].append(eps.clone()) or step(eps, *a, **k)
    settings = make_pairs.SamplingSettings(size=SIDE, steps=STEPS, negative="blurry")
    x_a, x_b = sampler(("the same man on the left and right", "a man, normal costume", "a man, angry"), 3, settings)
    assert x_a.size == x_b.size == (SIDE, SIDE)
    assert seen["prompts"] == [["blurry", "the same man on the left and right", "a man, normal costume",
                                "a man, angry"]]
    assert len(seen["unet"]) == len(seen["stepped"]) == STEPS
    half = SIDE // 8
    for out, eps in zip(seen["unet"], seen["stepped"]):
        assert out.shape == (4, 4, half, 2 * half)
        n, p, a, b = out
        guided = [n + 7.5 * (c - n) for c in (p, a, b)]
        left = 0.1 * guided[0][..., :half] + 0.9 * guided[1][..., :half]
        right = 0.1 * guided[0][..., half:] + 0.9 * guided[2][..., half:]
        torch.testing.assert_close(eps[0], torch.cat([left, right], dim=-1), rtol=1e-5, atol=1e-5)


def _pose_images(folder):
    folder.mkdir()
    for i, (x, y) in enumerate([(20, 10), (40, 50)]):
        image = Image.new("RGB", (96, 96))
        ImageDraw.Draw(image).line([(48, 10), (x, y), (48, 90)], fill=(255, 0, 0), width=6)
        image.save(folder / f"pose{i}.png")
    return folder


def test_the_openpose_controlnet_steers_both_halves(base, openpose, tmp_path, one_thread):
    poses = _pose_images(tmp_path / "poses")
    with_pose, without = tmp_path / "posed", tmp_path / "plain"
    _run(base, with_pose, 2, "--controlnet", str(openpose), "--poses", str(poses))
    _run(base, without, 2)
    for i in range(2):
        for sub in ("condition", "gt"):
            a, b = _pixels(with_pose / "train" / sub / f"{i}.png"), _pixels(without / "train" / sub / f"{i}.png")
            assert np.abs(a.astype(int) - b.astype(int)).mean() > 1, (i, sub)
    with pytest.raises(SystemExit):
        _run(base, tmp_path / "x", 1, "--poses", str(poses))  # --controlnet and --poses go together
    with pytest.raises(InputError, match="No pose images"):
        _run(base, tmp_path / "y", 1, "--controlnet", str(openpose), "--poses", str(tmp_path / "data"))

"""The "from WHERE" of a missing-model message: every model a template names has its publisher."""
import importlib.util
import json

from scripts.harness.server import REPO

_spec = importlib.util.spec_from_file_location("recompose_sources", REPO / "nodes" / "_sources.py")
sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sources)

LOADERS = {"RecomposeFitCheckLoader", "RecomposeSelfieInpaintLoader", "RecomposeSelfieControlNetLoader",
           "RecomposePaintingRendererLoader", "RecomposePaintingMaskGeneratorLoader", "RecomposeAlignTokLoader",
           "RecomposeFaceCorrectorLoader", "CheckpointLoaderSimple"}


def test_every_model_a_template_names_has_a_source():
    named = set()
    for path in (REPO / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in LOADERS:
                named.update(v for v in node["widgets_values"] if isinstance(v, str))
    assert named
    unknown = sorted(n for n in named if n.rsplit("/", 1)[-1] not in sources.SOURCES)
    assert not unknown, f"add them to nodes/_sources.py: {unknown}"


def test_a_name_in_a_subfolder_is_looked_up_by_its_file_name():
    assert "inverse_painting" in sources.source_of("recompose_painting", "renderer/ckpt/checkpoint-global_step-200000.ckpt")
    assert sources.source_of("recompose_painting", "RP/checkpoint-global_step-80000.ckpt").endswith("checkpoints/RP/")


def test_an_unknown_name_gets_what_belongs_in_its_folder():
    assert sources.source_of("recompose_fitcheck", "my_finetune.pth") == "https://huggingface.co/tencent/MimicMotion"
    assert sources.source_of("diffusers", "something_else") == ""

"""ComfyUI caches node outputs and hands the same objects to every consumer, in this and later runs:
no node may change its inputs (an upstream node's cached output) and a node run again on cached
inputs must give the same outputs. Every node that runs in seconds on CPU is called in-process on the
tiny fixtures; models a node patches must be clones."""
import pytest
import torch

from scripts.harness.examples import write_example_inputs
from scripts.harness.inprocess import (cheap_graph, fingerprint, import_pack, node_classes, run_node, step_inputs,
                                       use_base)
from tests.fixtures import build_aligntok, build_painting, build_selfie_inpaint


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy")
    write_example_inputs(base / "input")
    for builder in (build_aligntok, build_painting, build_selfie_inpaint):
        builder.build(base / "models")
    import_pack()
    use_base(base)
    return base


def test_no_node_changes_its_inputs_and_reruns_on_cached_inputs_match(tiny_base, one_thread):
    classes = node_classes()
    graph = cheap_graph(tiny_base)
    results, first, changed = {}, {}, []
    for name, node_id, given in graph:
        inputs = step_inputs(classes[node_id], given, results)
        before = {key: fingerprint(value) for key, value in inputs.items()}
        results[name] = run_node(classes[node_id], **inputs)
        first[name] = fingerprint(results[name])
        changed += [f"{name} ({node_id}) changed its input '{key}'" for key, value in inputs.items()
                    if fingerprint(value) != before[key]]
    for name, node_id, given in graph:  # later nodes must not have changed earlier (cached) outputs
        if fingerprint(results[name]) != first[name]:
            changed.append(f"the cached outputs of {name} ({node_id}) were changed downstream")
    for name, node_id, given in graph:  # a second run on the cached upstream outputs
        again = run_node(classes[node_id], **step_inputs(classes[node_id], given, results))
        if fingerprint(again) != first[name]:
            changed.append(f"{name} ({node_id}) gave different outputs when run again on the same cached inputs")
    assert not changed, "\n".join(changed)
    assert len(graph) >= 30  # every cheap node took part


def test_the_check_sees_an_in_place_change(tiny_base):
    image = torch.zeros(1, 4, 4, 3)
    before = fingerprint({"image": image, "nested": [image[:, :2]]})
    image[0, 0, 0, 0] = 1.0
    assert fingerprint({"image": image, "nested": [image[:, :2]]}) != before


def test_multi_reference_attention_patches_a_clone(tiny_base):
    import comfy.model_patcher
    import comfy.model_sampling

    class Sampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        pass

    class SpatialTransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer_blocks = torch.nn.ModuleList([torch.nn.Identity()])

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model_sampling = Sampling()
            self.diffusion_model = torch.nn.Module()
            self.diffusion_model.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(SpatialTransformer())])

    model = comfy.model_patcher.ModelPatcher(Model(), torch.device("cpu"), torch.device("cpu"))
    options = repr(model.model_options)
    cls = node_classes()["RecomposeMultiReferenceAttention"]
    (patched,) = run_node(cls, model=model, frames_per_video=0, front_frame=1, back_frame=2, strength=1.0,
                          start_percent=0.0, end_percent=1.0)
    assert patched is not model and patched.model_options is not model.model_options
    assert repr(model.model_options) == options  # the input model carries no patch
    assert repr(patched.model_options) != options  # the clone does

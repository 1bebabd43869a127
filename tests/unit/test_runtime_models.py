"""Loaded models are placed and freed by comfy.model_management: nodes hand their torch modules to
``load_models``, which tracks one ModelPatcher per loaded object for as long as the object lives."""
import gc

import torch


class Pipe:
    def __init__(self, *modules):
        self.modules = list(modules)

    def torch_modules(self):
        return self.modules + [None]


def _tracked(mm) -> list:
    return [m.model.model for m in mm.current_loaded_models if m.model is not None]


def test_one_patcher_per_loaded_object_reused_and_dropped_with_it(runtime):
    rt, mm = runtime
    unet, vae = torch.nn.Linear(4, 4), torch.nn.Conv2d(3, 3, 1)
    pipe = Pipe(unet, vae)
    before = len(mm.current_loaded_models)
    assert rt.load_models(pipe, None) == mm.get_torch_device()
    rt.load_models(pipe)
    tracked = [m for m in _tracked(mm) if unet in list(m.modules())]
    assert len(tracked) == 1 and vae in list(tracked[0].modules())  # one patcher, both modules
    assert len(mm.current_loaded_models) == before + 1
    del pipe, tracked
    gc.collect()
    mm.cleanup_models_gc()
    assert not any(unet in list(m.modules()) for m in _tracked(mm))


def test_modules_and_plain_objects(runtime):
    rt, mm = runtime
    controlnet = torch.nn.Linear(2, 2)
    baseline_painter = object()  # no weights: skipped
    rt.load_models(controlnet, baseline_painter)
    assert any(controlnet in list(m.modules()) for m in _tracked(mm))
    assert not rt._modules_of(baseline_painter)


def test_loader_placement_is_float32_on_cpu(runtime):
    rt, _ = runtime
    device, dtype = rt.load_placement()
    assert device.type == "cpu" and dtype == torch.float32


def test_the_model_manager_decides_full_or_partial_loading(runtime, monkeypatch):
    rt, mm = runtime
    calls = []
    real = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: calls.append(kw) or real(models, **kw))
    rt.load_models(torch.nn.Linear(3, 3))
    assert calls and not calls[0].get("force_full_load", False)  # dynamic VRAM offloading may apply

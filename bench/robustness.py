"""Robustness figures of the pack (issue 10), on the tiny test fixtures, CPU, loopback only.

fuzz    hypothesis corrupts one tensor input of every cheap node (scripts/harness/inprocess.py:
        cheap_graph) at a time: 1x1 / empty / huge-aspect images, empty and full masks, batch
        mismatches, NaN/Inf, other dtypes, channels and ranks; and feeds the loaders truncated and
        wrong-format weight files. Each case must end in a RecomposeError (InputError /
        CheckpointFormatError: a message naming the input) or a normal result; anything else (a raw
        library error, a hang past HANG_S) is an unclear error and is listed.
cancel  the long nodes are queued with long settings, /interrupt is posted while they run (and once
        in Selfie Inpaint's set-up, right as the node starts) and the time until the server reports
        the interruption is measured; cancelled saves must leave no file in the model folders.
soak    mixed shipped workflows (ui_to_api of workflows/*.json), some interrupted, on one server:
        it must stay up, every finished prompt must pass its tests/e2e/check_<name>.py, and the
        server's RSS (/proc) must end within 10% of its level after the first round.

    .venv/bin/python bench/robustness.py --quick   # CI (tests/e2e/test_robustness_quick.py)
    .venv/bin/python bench/robustness.py           # full run: 200 soak prompts

Prints `name: value` lines last: fuzz_cases, fuzz_unclear_errors (goal 0), cancel_latency_s_max
(goal <= 2), soak_prompts_ok, soak_rss_growth_ratio (goal <= 1.10).
"""
import argparse
import copy
import importlib
import json
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HANG_S = 60  # one fuzz case running longer than this counts as a hang
SOAK_WORKFLOWS = ("selfie_tools", "motion_retrieval", "inverse_painting_baseline", "aligntok_roundtrip",
                  "face_undistort", "inverse_painting", "multiref_animate")
QUICK_SOAK_WORKFLOWS = ("motion_retrieval", "aligntok_roundtrip")
QUICK_CANCELS = ("selfie_inpaint_setup", "inverse_paint", "fit_check_sampler", "aligntok_train", "motion_database_build")


# -- fuzzing (in-process) ---------------------------------------------------------------------------
def _corrupt(value, kind: str, param: int):
    """``value`` (IMAGE [B,H,W,C], MASK [B,H,W] or LATENT dict) made degenerate in one way."""
    import torch

    if isinstance(value, dict):
        return {**value, "samples": _corrupt(value["samples"], kind, param)}
    x = value.clone()
    b, h, w = x.shape[:3]
    rest = tuple(x.shape[3:])
    if kind == "size":  # 1x1, 0-size, huge aspect
        sizes = [(1, 1), (0, w), (h, 0), (1, 1536), (1536, 2), (3, 5)]
        hh, ww = sizes[param % len(sizes)]
        return torch.rand(b, hh, ww, *rest)
    if kind == "batch":
        return x[:0] if param % 3 == 0 else x.repeat(1 + param % 3 + 1, *([1] * (x.ndim - 1)))[:b + 1 + param % 2]
    if kind == "nonfinite":
        x.view(-1)[:: max(1, x.numel() // 7)] = [math.nan, math.inf, -math.inf][param % 3]
        return x
    if kind == "dtype":
        dtypes = [torch.float16, torch.float64, torch.uint8, torch.bool, torch.bfloat16]
        dtype = dtypes[param % len(dtypes)]
        return (x * 255).to(dtype) if dtype == torch.uint8 else x.to(dtype)
    if kind == "range":  # values far outside 0..1
        return x * [1000.0, -1.0, 255.0][param % 3]
    if kind == "fill":  # an empty / a full mask or a constant image
        return torch.full_like(x, float(param % 2))
    if kind == "channels" and x.ndim == 4:
        return x[..., :1] if param % 2 == 0 else torch.cat([x, x[..., :1]], -1)
    if kind == "rank":
        return x[0] if param % 2 == 0 else x[None]
    return x


CORRUPTIONS = ("size", "batch", "nonfinite", "dtype", "range", "fill", "channels", "rank")


class _Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Hang()


def fuzz(base: Path, max_examples: int, seed: int = 0) -> tuple:
    """(cases run, unclear errors as text lines)."""
    import torch

    from hypothesis import configuration
    # hypothesis caches what it learns under .hypothesis/ in the working directory: keep it out of the pack
    configuration.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="recompose_hypothesis_"))
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from scripts.harness.inprocess import cheap_graph, import_pack, node_classes, run_node, step_inputs, use_base

    import_pack()
    use_base(base)
    import folder_paths

    recompose_error = importlib.import_module("recompose_pack.pipelines.common.errors").RecomposeError
    classes = node_classes()
    graph = cheap_graph(base)
    results, targets = {}, []
    for name, node_id, given_inputs in graph:  # one good run gives every step's valid inputs
        inputs = step_inputs(classes[node_id], given_inputs, results)
        results[name] = run_node(classes[node_id], **inputs)
        for key, value in given_inputs.items():
            if isinstance(value, torch.Tensor) or (isinstance(value, tuple) and _is_tensor_like(inputs[key])):
                targets.append((name, node_id, key))
    file_cases = _weight_file_cases(classes)
    done, unclear = [0], []

    def run_case(name, node_id, key, kind, param):
        step = next(s for s in graph if s[0] == name)
        inputs = step_inputs(classes[node_id], step[2], results)
        inputs[key] = _corrupt(inputs[key], kind, param)
        _call(classes[node_id], inputs, f"{node_id}.{key} {kind}#{param}")

    def _call(cls, inputs, label):
        done[0] += 1
        signal.alarm(HANG_S)
        try:
            run_node(cls, **inputs)
        except recompose_error:
            pass
        except _Hang:
            unclear.append(f"{label}: no answer within {HANG_S} s")
        except Exception as exc:  # noqa: BLE001 (every other exception is what is being counted)
            unclear.append(f"{label}: {type(exc).__name__}: {str(exc)[:160]}")
        finally:
            signal.alarm(0)

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(target=st.sampled_from(targets), kind=st.sampled_from(CORRUPTIONS), param=st.integers(0, 11))
    def tensor_cases(target, kind, param):
        run_case(*target, kind, param)

    @settings(max_examples=max(4, max_examples // 8), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=st.sampled_from(file_cases), cut=st.floats(0.0, 0.999))
    def file_cases_run(case, cut):
        node_id, key, source, folder = case
        name = _bad_copy(source, bad_root, cut)
        _call(classes[node_id], {**_file_inputs(node_id, results), key: name}, f"{node_id}.{key} cut {cut:.3f}")

    bad_root = Path(tempfile.mkdtemp(prefix="robustness_fuzz_"))
    for folder in {c[3] for c in file_cases}:
        folder_paths.add_model_folder_path(folder, str(bad_root), is_default=True)

    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        tensor_cases()
        if file_cases:
            file_cases_run()
    finally:
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(bad_root, ignore_errors=True)
    return done[0], unclear


def _is_tensor_like(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor) or (isinstance(value, dict) and isinstance(value.get("samples"),
                                                                                      torch.Tensor))


def _weight_file_cases(classes) -> list:
    """(loader id, input, a good weight file, its folder) for loaders whose fixture file exists."""
    import folder_paths

    wanted = [("RecomposeAlignTokLoader", "tokenizer_name", "recompose_aligntok", "aligntok_f16d32.safetensors"),
              ("RecomposePaintingRendererLoader", "checkpoint", "recompose_painting",
               "renderer/ckpt/checkpoint-global_step-200000.ckpt"),
              ("RecomposePaintingMaskGeneratorLoader", "checkpoint", "recompose_painting",
               "RP/checkpoint-global_step-80000.ckpt"),
              ("RecomposeSelfieFineTuneLoader", "finetune", "recompose_selfie", None)]
    cases = []
    for node_id, key, folder, name in wanted:
        path = folder_paths.get_full_path(folder, name) if name else None
        if node_id in classes and (path or name is None):
            cases.append((node_id, key, path, folder))
    return cases


def _bad_copy(source, root: Path, cut: float) -> str:
    """A truncated copy of ``source`` (or, without one, a text file named like a weight file) in
    ``root``, a model-folder root; returns the name to pick."""
    data = Path(source).read_bytes() if source else b"not a weight file\n" * 50
    name = f"robustness_fuzz{Path(source).suffix if source else '.safetensors'}"
    (root / name).write_bytes(data[:int(len(data) * cut)] if source else data)
    return name


def _file_inputs(node_id: str, results: dict) -> dict:
    inputs = {"RecomposePaintingRendererLoader": {"base_model": "realisticVisionV51_v51VAE",
                                                  "clip_model": "clip-vit-base-patch32"},
              "RecomposePaintingMaskGeneratorLoader": {"base_model": "realisticVisionV51_v51VAE"},
              "RecomposeSelfieFineTuneLoader": {"selfie_pipe": results["selfie_pipe"][0]}}
    return dict(inputs.get(node_id, {}))


# -- server helpers ----------------------------------------------------------------------------------
class Events:
    """The server's websocket messages for one client id, collected on a thread."""

    def __init__(self, server):
        import websocket

        self.client_id = uuid.uuid4().hex
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={self.client_id}",
                                              timeout=5)
        self.messages, self.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                raw = self.ws.recv()
            except Exception:  # noqa: BLE001 (closed or timed out: keep listening until closed)
                if not self.ws.connected:
                    return
                continue
            try:
                message = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                message = None
            if isinstance(message, dict) and "type" in message:
                with self.lock:
                    self.messages.append((time.monotonic(), message))

    def wait_for(self, test, timeout: float):
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self.lock:
                new = self.messages[seen:]
                seen = len(self.messages)
            for when, msg in new:
                if test(msg):
                    return when, msg
            time.sleep(0.01)
        return None, None

    def close(self):
        self.ws.close()


def _post(server, path, data):
    req = urllib.request.Request(server.url(path), data=json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (loopback server URL)
            body = r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')[:1500]}") from e
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def queue(server, events, prompt) -> str:
    reply = _post(server, "/prompt", {"prompt": prompt, "client_id": events.client_id})
    if reply.get("node_errors"):
        raise RuntimeError(f"invalid prompt: {json.dumps(reply['node_errors'])[:800]}")
    return reply["prompt_id"]


def _ended(prompt_id):
    return lambda m: m.get("data", {}).get("prompt_id") == prompt_id and m["type"] in (
        "execution_interrupted", "execution_error", "execution_success")


def cancel_latency(server, events, prompt, node_id, delay_s, timeout=300.0):
    """Seconds from POST /interrupt (``delay_s`` after ``node_id`` starts) until the server reports
    the prompt interrupted; None when it finished before the interrupt arrived."""
    prompt_id = queue(server, events, prompt)
    started, _ = events.wait_for(lambda m: m["type"] == "executing" and m["data"].get("prompt_id") == prompt_id
                                 and str(m["data"].get("node")) == str(node_id), timeout)
    if started is None:
        raise TimeoutError(f"node {node_id} never started")
    time.sleep(delay_s)
    sent = time.monotonic()
    _post(server, "/interrupt", {})
    ended, msg = events.wait_for(_ended(prompt_id), timeout)
    if msg is None:
        raise TimeoutError(f"prompt {prompt_id} did not stop within {timeout} s of /interrupt")
    return ended - sent if msg["type"] == "execution_interrupted" else None


def workflow_prompt(name: str, object_info: dict) -> dict:
    from scripts.harness.workflow import load, ui_to_api

    return ui_to_api(load(ROOT / "workflows" / f"{name}.json"), object_info)


def only_up_to(prompt: dict, node_id: str) -> dict:
    """The part of ``prompt`` that ``node_id`` needs, plus a PreviewAny of its first output."""
    keep, todo = set(), [str(node_id)]
    while todo:
        nid = todo.pop()
        if nid in keep:
            continue
        keep.add(nid)
        todo += [str(v[0]) for v in prompt[nid]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    part = {k: copy.deepcopy(prompt[k]) for k in keep}
    part["robustness_out"] = {"class_type": "PreviewAny", "inputs": {"source": [str(node_id), 0]}}
    return part


def _find(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def long_prompts(server, object_info, motion_clips: int = 5000) -> list:
    """(label, prompt, node id, interrupt delay, files that must not exist afterwards)."""
    models = server.base / "models" / "recompose"
    cases = []
    total = workflow_prompt("total_selfie", object_info)
    node = _find(total, "RecomposeSelfieInpaint")
    inpaint = only_up_to(total, node)
    inpaint[node]["inputs"]["steps"] = 200  # the input's maximum
    cases.append(("selfie_inpaint_setup", inpaint, node, 0.0, []))
    cases.append(("selfie_inpaint", copy.deepcopy(inpaint), node, 1.0, []))
    node = _find(total, "RecomposeSelfieFineTune")
    tune = only_up_to(total, node)
    tune[node]["inputs"].update(steps=100000, save_as="robustness_cancelled.safetensors")
    cases.append(("selfie_finetune", tune, node, 1.0, [models / "selfie" / "robustness_cancelled.safetensors"]))
    paint = workflow_prompt("inverse_painting", object_info)
    node = _find(paint, "RecomposeInversePaint")
    paint[node]["inputs"]["max_updates"] = 200
    cases.append(("inverse_paint", only_up_to(paint, node), node, 1.0, []))
    fit = workflow_prompt("fit_check", object_info)
    node = _find(fit, "RecomposeFitCheckSampler")
    fit[node]["inputs"]["steps"] = 200  # the input's maximum
    cases.append(("fit_check_sampler", only_up_to(fit, node), node, 1.0, []))
    motion = workflow_prompt("motion_retrieval", object_info)
    node = _find(motion, "RecomposeMotionDatabase")
    motion[node]["inputs"]["synthetic_clips"] = motion_clips
    cases.append(("motion_database_build", only_up_to(motion, node), node, 1.0, []))
    train_dir = server.base / "input" / "robustness_train"
    train_dir.mkdir(parents=True, exist_ok=True)
    for name in ("recompose_chelsea.jpg", "recompose_coffee.jpg"):
        target = train_dir / name
        if not target.exists():
            target.write_bytes((server.base / "input" / name).read_bytes())
    train = {"1": {"class_type": "RecomposeAlignTokLoader", "inputs": {"tokenizer_name": "aligntok_f16d32.safetensors"}},
             "2": {"class_type": "RecomposeAlignTokTrain",
                   "inputs": {"tokenizer": ["1", 0], "image_folder": "robustness_train", "stage": 1, "steps": 1000000,
                              "batch_size": 2, "size": 32, "lr_stage1": 1e-3, "lr_stage2": 1e-5, "lr_stage3": 1e-4, "gan_start_stage1": 1, "gan_start_stages_2_3": 0,
                              "save_as": "robustness_cancelled.safetensors"}},
             "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    cases.append(("aligntok_train", train, "2", 1.0, [models / "aligntok" / "robustness_cancelled.safetensors"]))
    return cases


def measure_cancels(server, events, object_info, quick: bool) -> tuple:
    """({label: latency s or None}, [left-over files])."""
    latencies, leftovers = {}, []
    for label, prompt, node, delay, must_not_exist in long_prompts(server, object_info, 600 if quick else 5000):
        if quick and label not in QUICK_CANCELS:
            continue
        latencies[label] = cancel_latency(server, events, prompt, node, delay)
        for path in must_not_exist:
            leftovers += [str(p) for p in path.parent.glob(path.name + "*")]
    return latencies, leftovers


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def soak(server, events, object_info, names, total: int, cancel_every: int) -> dict:
    """Queues ``total`` prompts cycling through ``names``; every ``cancel_every``-th is interrupted 0.3 s
    after it starts. Finished prompts are checked with tests/e2e/check_<name>.py."""
    prompts = {name: workflow_prompt(name, object_info) for name in names}
    checks = {name: importlib.import_module(f"tests.e2e.check_{name}").check for name in names}
    ok, cancelled, failures, rss_first = 0, 0, [], None
    for i in range(total):
        name = names[i % len(names)]
        prompt_id = queue(server, events, prompts[name])
        if cancel_every and i % cancel_every == cancel_every - 1:
            events.wait_for(lambda m, p=prompt_id: m["type"] == "executing" and m["data"].get("prompt_id") == p, 300)
            time.sleep(0.3)
            _post(server, "/interrupt", {})
        _, msg = events.wait_for(_ended(prompt_id), 900)
        cancelled += msg is not None and msg["type"] == "execution_interrupted"
        if msg is None or server.proc.poll() is not None:
            raise RuntimeError(f"the server stopped answering at prompt {i} ({name})")
        if msg["type"] == "execution_success":
            entry = server.get(f"/history/{prompt_id}")[prompt_id]
            try:
                checks[name](server, entry)
                ok += 1
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")
        elif msg["type"] == "execution_error":
            failures.append(f"{name}: {msg['data'].get('exception_message', '')[:200]}")
        if i == len(names) - 1:
            rss_first = rss_bytes(server.proc.pid)
    rss_last = rss_bytes(server.proc.pid)
    return {"ok": ok, "cancelled": cancelled, "failures": failures, "rss_first": rss_first, "rss_last": rss_last}


# -- run ---------------------------------------------------------------------------------------------
def run(server, quick: bool) -> dict:
    """Every figure, against a started ComfyServer whose base holds the tiny fixtures."""
    figures = {}
    cases, unclear = fuzz(server.base, max_examples=25 if quick else 400)
    figures.update(fuzz_cases=cases, fuzz_unclear_errors=len(unclear), fuzz_unclear=unclear)
    object_info = server.object_info()
    events = Events(server)
    try:
        latencies, leftovers = measure_cancels(server, events, object_info, quick)
        names = QUICK_SOAK_WORKFLOWS if quick else SOAK_WORKFLOWS
        total = 2 * len(names) if quick else 200
        soaked = soak(server, events, object_info, names, total, cancel_every=2 if quick else 5)
    finally:
        events.close()
    measured = [v for v in latencies.values() if v is not None]
    figures.update(cancel_latencies=latencies, cancel_leftover_files=leftovers,
                   cancel_latency_s_max=max(measured) if measured else float("nan"),
                   soak_prompts=total, soak_cancelled=soaked["cancelled"], soak_failures=soaked["failures"],
                   soak_prompts_ok=soaked["ok"], soak_rss_growth_ratio=soaked["rss_last"] / soaked["rss_first"],
                   server_up=server.proc.poll() is None)
    return figures


def report(figures: dict) -> None:
    for line in figures["fuzz_unclear"]:
        print(f"unclear: {line}")
    for label, latency in figures["cancel_latencies"].items():
        print(f"cancel {label}: " + ("finished before the interrupt" if latency is None else f"{latency:.2f} s"))
    for path in figures["cancel_leftover_files"]:
        print(f"left after a cancel: {path}")
    for line in figures["soak_failures"]:
        print(f"soak failure: {line}")
    print(f"soak: {figures['soak_prompts']} prompts, {figures['soak_cancelled']} interrupted, server up: "
          f"{figures['server_up']}")
    print(f"fuzz_cases: {figures['fuzz_cases']}")
    print(f"fuzz_unclear_errors: {figures['fuzz_unclear_errors']}")
    print(f"soak_prompts_ok: {figures['soak_prompts_ok']}")
    print(f"soak_rss_growth_ratio: {figures['soak_rss_growth_ratio']:.3f}")
    print(f"cancel_latency_s_max: {figures['cancel_latency_s_max']:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: few fuzz cases, a short soak")
    parser.add_argument("--base", type=Path, default=None, help="ComfyUI base folder (default: a temporary one)")
    args = parser.parse_args(argv)

    from scripts.harness.examples import write_example_inputs
    from scripts.harness.server import ComfyServer
    from tests.e2e.conftest import build_fixture_models

    with tempfile.TemporaryDirectory() as tmp:
        base = args.base or Path(tmp)
        write_example_inputs(base / "input")
        build_fixture_models(base / "models")
        server = ComfyServer(base).start()
        try:
            figures = run(server, args.quick)
        finally:
            server.stop()
    report(figures)


if __name__ == "__main__":
    main()

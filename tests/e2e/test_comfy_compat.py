"""Every piece of ComfyUI the pack relies on, found by reading nodes/, pipelines/ and workflows/, exists
in the ComfyUI it runs on: imported names and their attributes, ModelPatcher methods, the
transformer-option keys attention patches read, and the core node ids and inputs the templates use.

Run against another ComfyUI tree by pointing scripts/harness/server.py's COMFY_DIR at it; a symbol
that is gone shows up by name here instead of as a user's traceback.
"""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.harness.server import COMFY_DIR, REPO

from .workflows import WORKFLOWS

COMFY_ROOTS = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "node_helpers",
               "nodes", "server", "latent_preview"}
# dict-likes ComfyUI hands to patches and model hooks: the string keys read from them must be ComfyUI's
OPTION_DICTS = {"transformer_options", "extra_options", "model_options"}
# names the pack gives a ModelPatcher it works on (pipelines may not import ComfyUI, so no import says so)
PATCHER_NAMES = {"model", "patched", "patcher"}


def _sources():
    for folder in ("nodes", "pipelines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _chain(node):
    """['root', 'a', 'b'] for root.a.b, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id] + parts[::-1] if isinstance(node, ast.Name) else None


def imported_symbols() -> dict:
    """dotted ComfyUI name -> a file using it: every import from ComfyUI and every attribute chain on it."""
    found = {}
    for path, tree in _sources():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in COMFY_ROOTS:
                        root = alias.asname or alias.name.split(".")[0]
                        aliases[root] = alias.name if alias.asname else root
                        found.setdefault(alias.name, path.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in COMFY_ROOTS:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    found.setdefault(f"{node.module}.{alias.name}", path.name)
        for node in ast.walk(tree):
            chain = _chain(node) if isinstance(node, ast.Attribute) else None
            if chain and chain[0] in aliases:
                found.setdefault(".".join([aliases[chain[0]]] + chain[1:]), path.name)
    return found


def patcher_methods() -> dict:
    """ModelPatcher methods the pack calls: model.clone(), patched.set_model_attn1_replace(...)..."""
    found = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                chain = _chain(node.func)
                if chain and len(chain) == 2 and chain[0] in PATCHER_NAMES and \
                        (chain[1] == "clone" or chain[1].startswith(("set_model_", "model_options"))):
                    found.setdefault(chain[1], path.name)
    return found


def _option_root(node) -> bool:
    while isinstance(node, ast.Subscript):
        node = node.value
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name in OPTION_DICTS


def option_keys() -> dict:
    """String keys read from transformer_options / extra_options / model_options (x["k"], x.get("k"))."""
    found = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Subscript) and _option_root(node.value) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and _option_root(node.func.value) and node.args and isinstance(node.args[0], ast.Constant):
                key = node.args[0].value
            if isinstance(key, str):
                found.setdefault(key, path.name)
    return found


CHECK_IN_COMFYUI = r"""
import ast, importlib, json, pathlib, sys
comfy_dir = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(comfy_dir))
from comfy.cli_args import args
args.cpu = True
wanted = json.loads(sys.stdin.read())

def resolve(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return True
    return False

missing = {"symbols": [], "patcher": [], "keys": []}
for dotted in wanted["symbols"]:
    try:
        ok = resolve(dotted)
    except AttributeError:
        ok = False
    if not ok:
        missing["symbols"].append(dotted)
import torch
from comfy.model_patcher import ModelPatcher
patcher = ModelPatcher(torch.nn.Linear(1, 1), torch.device("cpu"), torch.device("cpu"))
missing["patcher"] = [m for m in wanted["patcher"] if not callable(getattr(patcher, m, None))]
strings = set()
for folder in ("comfy", "comfy_extras"):
    for path in (comfy_dir / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(errors="replace"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
missing["keys"] = [k for k in wanted["keys"] if k not in strings]
print(json.dumps(missing))
"""


@pytest.fixture(scope="module")
def discovered():
    return {"symbols": imported_symbols(), "patcher": patcher_methods(), "keys": option_keys()}


@pytest.fixture(scope="module")
def missing(discovered):
    wanted = {kind: sorted(found) for kind, found in discovered.items()}
    proc = subprocess.run([sys.executable, "-c", CHECK_IN_COMFYUI, str(COMFY_DIR)], input=json.dumps(wanted),
                          capture_output=True, text=True, timeout=300, cwd=COMFY_DIR)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_discovery_finds_what_the_pack_is_known_to_use(discovered):
    """Guards the finder itself: symbols known to be used must be among those it checks."""
    assert {"comfy_api.latest.io", "comfy.model_management.get_torch_device", "folder_paths.get_folder_paths",
            "comfy.utils.ProgressBar"} <= set(discovered["symbols"])
    assert {"clone", "set_model_attn1_replace"} <= set(discovered["patcher"])
    assert {"n_heads", "cond_or_uncond"} <= set(discovered["keys"])


@pytest.mark.parametrize("kind", ["symbols", "patcher", "keys"])
def test_every_comfyui_symbol_the_pack_uses_exists(discovered, missing, kind):
    gone = [f"{name} (used in {discovered[kind][name]})" for name in missing[kind]]
    assert not gone, f"not in the ComfyUI at {COMFY_DIR}: {gone}"


def test_every_core_node_and_input_the_templates_use_exists(object_info):
    problems = []
    for path in WORKFLOWS:
        for node in json.loads(path.read_text())["nodes"]:
            kind = node["type"]
            if kind.startswith("Recompose"):
                continue
            if kind not in object_info:
                problems.append(f"{path.stem}: core node {kind} is gone")
                continue
            declared = {name for section in object_info[kind]["input"].values() for name in section}
            linked = {i["name"] for i in node.get("inputs", [])}
            problems += [f"{path.stem}: {kind} has no input {name}" for name in sorted(linked - declared)]
    assert not problems, problems


COMFY_TREE_SKIP = shutil.ignore_patterns("custom_nodes", "models", "input", "output", "temp", "user", "__pycache__")


def _import_guard() -> str:
    """comfy-import-guard (requirements-dev.txt): beside this Python, else on PATH. Missing fails under CI."""
    here = Path(sys.executable).parent / "comfy-import-guard"
    found = str(here) if here.exists() else shutil.which("comfy-import-guard")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("comfy-import-guard is not installed (pip install -r requirements-dev.txt)")
        pytest.skip("comfy-import-guard is not installed (pip install -r requirements-dev.txt)")
    return found


def test_comfy_import_guard_finds_no_breaking_reference_offline(tmp_path):
    """The registry's breakage checker, offline: it reads ComfyUI through git, so the tree we run on is
    committed into a scratch repository first."""
    tool = _import_guard()
    clone = tmp_path / "cache" / "ComfyUI"
    shutil.copytree(COMFY_DIR, clone, ignore=COMFY_TREE_SKIP, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "ComfyUI under test"]):
        subprocess.run(git + args, cwd=clone, check=True, capture_output=True)
    (tmp_path / "install" / "custom_nodes").mkdir(parents=True)
    (tmp_path / "install" / "custom_nodes" / "recompose").symlink_to(REPO, target_is_directory=True)
    proc = subprocess.run([tool, "--json", "--offline", "--quiet", "check", "--cache-dir", str(tmp_path / "cache"),
                           "--comfy-dir", str(tmp_path / "install"), "--target", "HEAD", "--no-update"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pack = json.loads(proc.stdout)["packs"][0]
    print(f"comfy_import_guard_references: {pack['references']}\n"
          f"comfy_import_guard_breaking: {len(pack['breaking'])}\ncomfy_import_guard_verdict: {pack['verdict']}")
    assert pack["verdict"] == "SAFE" and not pack["breaking"] and not pack["signature_drift"], pack

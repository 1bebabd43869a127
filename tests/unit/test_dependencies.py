"""What the pack imports is what it declares: every third-party import in nodes/ and pipelines/ is in
requirements.txt and in pyproject.toml (or an optional extra), both files agree, and nothing declared
is unused."""
import ast
import re
import sys
import tomllib

import pytest

from scripts.harness.server import REPO

# Modules a ComfyUI install already holds, so the pack does not have to declare them (it may, to state
# a tighter bound). Checked against ComfyUI 0.3.75's own requirements.txt below.
COMFYUI_PROVIDES = {
    "torch": "torch",            # ComfyUI's requirements; its installer picks the CUDA/ROCm/CPU build
    "torchvision": "torchvision",
    "numpy": "numpy",
    "PIL": "Pillow",
    "safetensors": "safetensors",
    "transformers": "transformers",  # >= 4.50.3 there; pipelines/common/hf_compat.py bridges 4.50-4.55
    "scipy": "scipy",
    "yaml": "pyyaml",
    "av": "av",                  # video reading (ComfyUI's own video nodes need it)
    "kornia": "kornia",
    "tqdm": "tqdm",              # progress bars of the CLIs
}
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "node_helpers",
                   "nodes", "server", "latent_preview"}  # the ComfyUI tree itself, not packages
# import name -> distribution name where they differ
DIST_NAMES = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn", "cv2": "opencv-python-headless"}
# Imported lazily, only by features that say what to install when missing: import name -> pyproject extra.
OPTIONAL = {
    "mediapipe": "mediapipe",  # face mesh / pose / person masks; the README's mediapipe step
    "sklearn": "dev",          # only pipelines/aligntok/probe.py, the linear-probe evaluation of tests and bench/
}


def _dist(name: str) -> str:
    return re.split(r"[<>=!~\[;\s]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports() -> dict:
    """top-level module -> files importing it, for every absolute import in nodes/ and pipelines/."""
    found = {}
    for folder in ("nodes", "pipelines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in COMFYUI_MODULES:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def requirements(path) -> dict:
    lines = [line.split("#")[0].strip() for line in (REPO / path).read_text().splitlines()]
    return {_dist(line): line for line in lines if line and not line.startswith("-")}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_third_party_import_is_declared_in_both_files():
    runtime_txt = requirements("requirements.txt")
    runtime_toml = {_dist(d) for d in pyproject()["dependencies"]}
    extras = {name: {_dist(d) for d in deps} for name, deps in pyproject()["optional-dependencies"].items()}
    problems = []
    for module, files in sorted(third_party_imports().items()):
        dist = DIST_NAMES.get(module, module).lower()
        if module in COMFYUI_PROVIDES:
            continue
        if module in OPTIONAL:
            if dist not in extras.get(OPTIONAL[module], set()):
                problems.append(f"{module}: not in the pyproject extra '{OPTIONAL[module]}'")
            continue
        for where, declared in (("requirements.txt", runtime_txt), ("pyproject.toml", runtime_toml)):
            if dist not in declared:
                problems.append(f"{module} ({dist}, imported by {sorted(files)[0]}): not in {where}")
    assert not problems, "\n".join(problems)


def test_requirements_txt_and_pyproject_declare_the_same_runtime_dependencies():
    runtime_txt = sorted(requirements("requirements.txt").values())
    assert runtime_txt == sorted(pyproject()["dependencies"])


def test_nothing_declared_is_unused():
    imported = {DIST_NAMES.get(m, m).lower() for m in third_party_imports()}
    unused = sorted(set(requirements("requirements.txt")) - imported)
    assert not unused, f"declared but never imported by nodes/ or pipelines/: {unused}"


def test_the_modules_assumed_from_comfyui_are_in_its_requirements():
    comfy = requirements(".comfyui/requirements.txt")
    missing = sorted(d for d in COMFYUI_PROVIDES.values() if d.lower() not in comfy)
    assert not missing, missing


def test_the_readme_install_does_not_pull_in_test_tools():
    assert not {"pytest", "scikit-image", "scikit-learn"} & set(requirements("requirements.txt"))


@pytest.mark.parametrize("version, keyword", [("4.50.3", "torch_dtype"), ("4.55.4", "torch_dtype"),
                                              ("4.56.0", "dtype"), ("5.0.0rc1", "dtype")])
def test_the_dtype_keyword_follows_the_transformers_version(monkeypatch, version, keyword):
    import torch
    import transformers

    from pipelines.common.hf_compat import from_pretrained_dtype

    monkeypatch.setattr(transformers, "__version__", version)
    assert from_pretrained_dtype(torch.float16) == {keyword: torch.float16}


def test_the_readme_mediapipe_step_is_the_one_the_nodes_print():
    from pipelines.common.install import MEDIAPIPE_INSTALL

    readme = (REPO / "README.md").read_text()
    assert MEDIAPIPE_INSTALL in readme
    assert "opencv-contrib-python" not in MEDIAPIPE_INSTALL  # clashes with other packs' opencv-python


def test_the_readme_models_table_names_every_model_the_templates_name():
    import json

    readme = (REPO / "README.md").read_text()
    used = set()
    for path in (REPO / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"].endswith("Loader") or node["type"] == "CheckpointLoaderSimple":
                used.update(v for v in node.get("widgets_values") or [] if isinstance(v, str))
    missing = sorted(n for n in used if n.rsplit("/", 1)[-1] not in readme)
    assert used and not missing, missing


def test_the_mediapipe_extra_lists_what_the_readme_step_installs():
    from pipelines.common.install import MEDIAPIPE_INSTALL

    words = [w.strip('"') for w in MEDIAPIPE_INSTALL.split() if w not in ("pip", "install", "--no-deps", "&&")]
    assert sorted(pyproject()["optional-dependencies"]["mediapipe"]) == sorted(words)

"""What the Comfy Registry gets: `comfy node validate` passes, `comfy node pack` leaves the development
files out (.comfyignore), the metadata is real (repository, square icon, requires-comfyui)."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from scripts.harness.server import COMFY_DIR, REPO

SHIPPED = ("__init__.py", "nodes/", "pipelines/", "workflows/", "example_inputs/", "docs/icon.png", "LICENSE",
           "pyproject.toml", "requirements.txt", "README.md")
NOT_SHIPPED = ("tests/", "bench/", "scripts/")


def _comfy_cli() -> str:
    """comfy-cli (requirements-dev.txt): beside this Python, else on PATH. Missing fails under CI."""
    here = Path(sys.executable).parent / "comfy"
    found = str(here) if here.exists() else shutil.which("comfy")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("comfy-cli is not installed (pip install -r requirements-dev.txt)")
        pytest.skip("comfy-cli is not installed (pip install -r requirements-dev.txt)")
    return found


@pytest.fixture(scope="module")
def pack_copy(tmp_path_factory):
    """The pack's files as a fresh git repository (comfy node pack reads git-tracked files)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    copy = tmp_path_factory.mktemp("pack") / "recompose"
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file() and not source.is_symlink():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=copy, check=True)
    subprocess.run(git + ["add", "-A"], cwd=copy, check=True)
    subprocess.run(git + ["commit", "-qm", "pack"], cwd=copy, check=True)
    return copy


def _run_comfy(pack_copy, *args):
    home = pack_copy.parent / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home))  # its config (tracking off by --skip-prompt) stays out of ~
    return subprocess.run([_comfy_cli(), "--skip-prompt", "--no-json", "node", *args], cwd=pack_copy, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_comfy_node_validate_passes_without_security_warnings(pack_copy):
    proc = _run_comfy(pack_copy, "validate")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "passed successfully" in output and "Security warnings" not in output, output


def test_the_registry_package_leaves_development_files_out(pack_copy):
    proc = _run_comfy(pack_copy, "pack")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = zipfile.ZipFile(pack_copy / "node.zip").namelist()
    for shipped in SHIPPED:
        assert any(n == shipped or n.startswith(shipped) for n in names), f"{shipped} is missing from the package"
    leaked = sorted(n for n in names if n.startswith(NOT_SHIPPED))
    assert not leaked, leaked[:20]


def _tool_comfy() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_repository_url_is_a_real_address():
    url = _tool_comfy()["project"]["urls"]["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert "example" not in url and "invalid" not in url


def test_icon_is_square_and_is_the_shipped_file():
    icon = _tool_comfy()["tool"]["comfy"]["Icon"]
    assert icon.endswith("/docs/icon.png"), icon
    width, height = Image.open(REPO / "docs" / "icon.png").size
    assert width == height and 100 <= width <= 400


def test_requires_comfyui_is_the_version_the_tests_run_on():
    tested = re.search(r'__version__\s*=\s*"([^"]+)"', (COMFY_DIR / "comfyui_version.py").read_text()).group(1)
    assert _tool_comfy()["tool"]["comfy"]["requires-comfyui"] == f">={tested}"

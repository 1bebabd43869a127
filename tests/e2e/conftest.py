"""One real ComfyUI server per test session, with tiny checkpoints and example inputs."""
import importlib
import os
import shutil
from pathlib import Path

import pytest

from scripts.harness.examples import write_example_inputs
from scripts.harness.server import REPO, ComfyServer

# RECOMPOSE_TEST_OUT lets parallel runs on one machine keep separate servers and outputs.
OUT = Path(os.environ.get("RECOMPOSE_TEST_OUT", REPO / "tests" / "out"))
FIXTURES = REPO / "tests" / "fixtures"


def build_fixture_models(models_dir: Path) -> None:
    """Run every tests/fixtures/build_<family>.py ``build(models_dir)``."""
    for path in sorted(FIXTURES.glob("build_*.py")):
        module = importlib.import_module(f"tests.fixtures.{path.stem}")
        module.build(models_dir)


SKIP_PARTS = {"__pycache__", ".git", ".venv", ".comfyui", ".cache", "node_modules", "output", "out"}


def pack_files() -> dict:
    """path -> mtime of the pack's own files (build and test outputs excluded)."""
    files = {}
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if path.is_file() and not SKIP_PARTS.intersection(rel.parts):
            files[str(rel)] = path.stat().st_mtime
    return files


@pytest.fixture(scope="session")
def pack_before_server():
    return pack_files()


@pytest.fixture(scope="session")
def comfy(pack_before_server):
    base = OUT / "comfy"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    write_example_inputs(base / "input")
    build_fixture_models(base / "models")
    server = ComfyServer(base).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def object_info(comfy):
    return comfy.object_info()

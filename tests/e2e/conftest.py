"""One real ComfyUI server per test session, with tiny checkpoints and example inputs."""
import importlib
import shutil
from pathlib import Path

import pytest

from scripts.harness.examples import write_example_inputs
from scripts.harness.server import REPO, ComfyServer

OUT = REPO / "tests" / "out"
FIXTURES = REPO / "tests" / "fixtures"


def build_fixture_models(models_dir: Path) -> None:
    """Run every tests/fixtures/build_<family>.py ``build(models_dir)``."""
    for path in sorted(FIXTURES.glob("build_*.py")):
        module = importlib.import_module(f"tests.fixtures.{path.stem}")
        module.build(models_dir)


@pytest.fixture(scope="session")
def comfy():
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

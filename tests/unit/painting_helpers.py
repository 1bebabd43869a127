"""Shared tiny Inverse Painting weights for tests/unit/test_painting_*.py (built once per session)."""
import pytest

from tests.fixtures import build_painting


@pytest.fixture(scope="session")
def painting_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("painting_models")
    return build_painting.build(root)


@pytest.fixture(scope="session")
def tiny_renderer(painting_models):
    from pipelines.inverse_painting.renderer import load_renderer

    return load_renderer(str(painting_models["renderer"]), str(painting_models["base"]), str(painting_models["clip"]),
                         steps=3)


@pytest.fixture(scope="session")
def tiny_rp(painting_models):
    from pipelines.inverse_painting.mask_generator import load_mask_generator

    return load_mask_generator(str(painting_models["rp"]), str(painting_models["base"]))

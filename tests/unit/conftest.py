"""Unit-test fixtures shared by several families."""
import importlib

import pytest
import torch

from scripts.harness.inprocess import import_pack


@pytest.fixture
def one_thread():
    """Tiny-model training tests run faster on one thread when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runtime():
    """(nodes._runtime, comfy.model_management) of the in-process pack."""
    import_pack()
    import comfy.model_management as mm

    return importlib.import_module("recompose_pack.nodes._runtime"), mm

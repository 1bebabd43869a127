"""Unit-test fixtures shared by several families."""
import importlib
import importlib.util
import sys

import pytest
import torch

from scripts.harness.server import COMFY_DIR, REPO


@pytest.fixture
def one_thread():
    """Tiny-model training tests run faster on one thread when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def import_pack():
    """The pack imported as ComfyUI imports a custom node (package ``recompose_pack``), on ComfyUI's CPU
    settings, so nodes' execute can be called in-process."""
    sys.path.insert(0, str(COMFY_DIR))
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; model_management reads it on import
    if "recompose_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("recompose_pack", REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules["recompose_pack"] = pack
        spec.loader.exec_module(pack)
    return sys.modules["recompose_pack"]


@pytest.fixture(scope="module")
def runtime():
    """(nodes._runtime, comfy.model_management) of the in-process pack."""
    import_pack()
    import comfy.model_management as mm

    return importlib.import_module("recompose_pack.nodes._runtime"), mm

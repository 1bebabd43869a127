"""Unit-test fixtures shared by several families."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny-model training tests run faster on one thread when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

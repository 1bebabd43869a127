"""``cancellable()`` makes every torch module call a cancel point while a node runs, and only then."""
import pytest
import torch


def test_module_calls_inside_cancellable_raise_on_interrupt(runtime):
    rt, mm = runtime
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    calls = []
    net[2].register_forward_hook(lambda *_: calls.append("last layer ran"))
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException), rt.cancellable():
            net(torch.zeros(1, 4))
        assert not calls  # stopped at the first layer, not after the whole call
    finally:
        mm.interrupt_current_processing(False)


def test_no_cancel_point_outside_cancellable(runtime):
    rt, mm = runtime
    net = torch.nn.Linear(4, 2)
    with rt.cancellable():
        net(torch.zeros(1, 4))
    mm.interrupt_current_processing(True)
    try:
        assert net(torch.zeros(1, 4)).shape == (1, 2)  # the hook was removed on exit
    finally:
        mm.interrupt_current_processing(False)

"""Progress reporting that pipelines call and nodes connect to ComfyUI.

A pipeline receives a ``Progress`` and calls ``step()`` in its loops; the node's
callback updates ComfyUI's progress bar, which is also where a cancelled run raises.
"""
from typing import Callable, Optional

StepCallback = Callable[[int, int, Optional[object]], None]


class Progress:
    def __init__(self, total: int, callback: Optional[StepCallback] = None):
        self.total = max(int(total), 1)
        self.done = 0
        self._callback = callback

    def step(self, n: int = 1, preview=None) -> None:
        self.done = min(self.done + n, self.total)
        if self._callback is not None:
            self._callback(self.done, self.total, preview)

    def child(self, total: int) -> "Progress":
        """A nested loop's progress, reported to the same callback (cancel points kept)."""
        def report(_done, _total, preview):
            if self._callback is not None:
                self._callback(self.done, self.total, preview)

        return Progress(total, report)


def no_progress(total: int = 1) -> Progress:
    return Progress(total)

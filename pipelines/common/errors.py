"""User-facing errors: each message says what was wrong and what to do about it."""


class RecomposeError(Exception):
    """Base class; ComfyUI shows the message to the user as-is."""


class InputError(RecomposeError, ValueError):
    """A node input the method cannot use (wrong size, empty mask, no face found...)."""


class CheckpointFormatError(RecomposeError):
    """A weight file that is missing or does not have the layout its loader expects."""

    def __init__(self, path, problem: str, expected=None, hint: str = ""):
        import os

        folder, name = os.path.split(str(path))
        parts = [f"{problem}: file '{name}' in folder '{folder}'."]
        if expected:
            shown = sorted(expected)[:12]
            more = f" (and {len(expected) - len(shown)} more)" if len(expected) > len(shown) else ""
            parts.append(f"Expected keys like: {', '.join(shown)}{more}.")
        if hint:
            parts.append(hint)
        super().__init__(" ".join(parts))
        self.path = str(path)

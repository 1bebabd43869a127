"""Plumbing shared by every pipeline: image conversions, checkpoints, errors, progress."""
from .errors import CheckpointFormatError, InputError, RecomposeError
from .progress import Progress, no_progress

__all__ = ["CheckpointFormatError", "InputError", "RecomposeError", "Progress", "no_progress"]

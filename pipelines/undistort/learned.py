"""The thesis' learned face corrector: checkpoint loading and format checks.

The official weights (``00000196-checkpoint.pth.tar``, a facevid2vid re-implementation
fine-tuned on EG3D renders) hold the state dicts ``generator``, ``kp_detector`` (15
canonical 3D keypoints), ``he_estimator`` and ``he_estimator_far`` (head pose and
expression of the near and of the far view). At inference the source image drives
itself: keypoints transformed by ``he_estimator`` vs. ``he_estimator_far`` give the
motion the generator applies.

What is implemented here: loading and validating that file (clear CheckpointFormatError
naming file, folder and expected keys). The facevid2vid networks themselves (3D
appearance features, dense motion, occlusion-aware SPADE generator) are NOT implemented in
this version: mode "auto" reports that and uses the geometric corrector instead.
"""
from dataclasses import dataclass

from ..common.checkpoints import load_state_dict, require_keys
from ..common.errors import CheckpointFormatError

EXPECTED_KEYS = ("generator", "kp_detector", "he_estimator", "he_estimator_far")
NUM_KEYPOINTS = 15
OFFICIAL_FILENAME = "00000196-checkpoint.pth.tar"
LEARNED_NOT_IMPLEMENTED = ("the learned facevid2vid corrector's networks are not implemented in this version; "
                           "used the geometric corrector")


@dataclass
class FaceCorrectorWeights:
    path: str
    state_dicts: dict  # the four sub-dicts, as published
    num_keypoints: int


def _keypoint_count(kp_detector: dict, path: str) -> int:
    """facevid2vid's KPDetector ends in a 3D conv with num_kp * depth... output channels named ``kp``."""
    weight = kp_detector.get("kp.weight")
    if weight is None:
        raise CheckpointFormatError(path, "kp_detector has no 'kp.weight' (not a facevid2vid keypoint detector)",
                                    expected=["kp_detector.kp.weight", "kp_detector.kp.bias"])
    return int(weight.shape[0])


def load_face_corrector(path: str) -> FaceCorrectorWeights:
    """Load and check the official corrector checkpoint; raises CheckpointFormatError if it is not one."""
    checkpoint = load_state_dict(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(path, "Not a checkpoint dictionary", expected=list(EXPECTED_KEYS))
    require_keys(checkpoint, EXPECTED_KEYS, path, "facevid2vid face-corrector")
    parts = {k: checkpoint[k] for k in EXPECTED_KEYS}
    for name, sd in parts.items():
        if not isinstance(sd, dict) or not sd:
            raise CheckpointFormatError(path, f"'{name}' is not a state dict", expected=list(EXPECTED_KEYS))
    num_kp = _keypoint_count(parts["kp_detector"], path)
    if num_kp != NUM_KEYPOINTS:
        raise CheckpointFormatError(
            path, f"kp_detector predicts {num_kp} keypoints, the Total Selfie corrector has {NUM_KEYPOINTS}",
            expected=["kp_detector.kp.weight"])
    if set(parts["he_estimator"]) != set(parts["he_estimator_far"]):
        raise CheckpointFormatError(path, "he_estimator and he_estimator_far have different layouts",
                                    expected=sorted(parts["he_estimator"])[:6])
    return FaceCorrectorWeights(str(path), parts, num_kp)

"""Motion clips from video: mediapipe pose on every frame gives OpenPose keypoints (what the
animation is driven by) and 3D world landmarks in metres (what gives the body's yaw).

World landmarks are centred on the hips, so they carry no root translation; that comes from
the 2D frames (``trajectory_from_poses``: hip position and apparent height). Yaw from 3D is
much better than the 2D shoulder-span estimate, which cannot tell front from back.
"""
import numpy as np

from ..common import InputError
from ..common.pose import blazepose_to_openpose18, openpose_json
from .database import MotionClip, trajectory_from_poses
from .trajectory import Trajectory

LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 11, 12, 23, 24
MIN_DETECTED_FRACTION = 0.5


def yaw_from_world_landmarks(world: np.ndarray) -> np.ndarray:
    """[T, 33, >=3] mediapipe world landmarks (x right, y down, z away from the camera) -> yaw [T]
    in radians, unwrapped; 0 when the body faces the camera, the same sign as the 2D estimate
    (negative when the nose turns towards the image's left)."""
    world = np.asarray(world, dtype=np.float64)
    across = (world[:, RIGHT_SHOULDER, :3] - world[:, LEFT_SHOULDER, :3]
              + world[:, RIGHT_HIP, :3] - world[:, LEFT_HIP, :3])
    # facing forward = up x across, with up = -y; its x is -across_z and its z is across_x
    return np.unwrap(np.arctan2(-across[:, 2], -across[:, 0]))


def _detect(rgb: np.ndarray):
    """(landmarks [33, 4] normalised, world [33, 3]) for one uint8 frame, or None."""
    from ..selfie_tools import mediapipe_runtime as mpr

    result = mpr.run(mpr.pose(), rgb)
    if result.landmarks is None or result.world is None:
        return None
    return result.landmarks, result.world


def _fill_missing(found: list) -> tuple:
    """Frames where no person was found take the nearest detected frame's landmarks."""
    have = [i for i, f in enumerate(found) if f is not None]
    if len(have) < max(1, MIN_DETECTED_FRACTION * len(found)):
        raise InputError(f"A person was found in only {len(have)} of {len(found)} frames; a motion clip needs "
                         f"one in at least {MIN_DETECTED_FRACTION:.0%} of them (full body, one person, visible).")
    nearest = [have[int(np.argmin([abs(i - h) for h in have]))] for i in range(len(found))]
    return [found[j] for j in nearest], len(found) - len(have)


def clip_from_frames(frames_uint8, fps: float, name: str, body_height_m: float = 1.7, progress=None):
    """[T, H, W, 3] uint8 video frames -> (MotionClip, notes). Poses are kept in pixels of the frames."""
    frames = np.asarray(frames_uint8)
    if frames.ndim != 4 or len(frames) < 2:
        raise InputError(f"A motion clip needs at least 2 video frames, got {len(frames) if frames.ndim == 4 else 0}.")
    height, width = frames.shape[1:3]
    found = []
    for frame in frames:
        found.append(_detect(frame))
        if progress is not None:
            progress.step()
    filled, missing = _fill_missing(found)
    poses = [openpose_json([blazepose_to_openpose18(image, width, height)], width, height) for image, _ in filled]
    flat = trajectory_from_poses(poses, fps, body_height_m)
    yaw = yaw_from_world_landmarks(np.stack([world for _, world in filled]))
    notes = [f"{missing} frame(s) without a person took the nearest frame's pose"] if missing else []
    return MotionClip(name, Trajectory(yaw, flat.translation, fps), poses), notes

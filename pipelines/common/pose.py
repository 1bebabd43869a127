"""Body poses: BlazePose-33 -> OpenPose-18, the community POSE_KEYPOINT JSON, a renderer.

POSE_KEYPOINT is what comfyui_controlnet_aux emits: a list (one entry per image) of
``{"people": [{"pose_keypoints_2d": [x, y, c] * 18, "face_keypoints_2d": None,
"hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None}, ...],
"canvas_width": W, "canvas_height": H}`` with x, y in pixels; a missing joint is (0, 0, 0).
Readers here also accept normalised (0..1) coordinates, which some packs emit.
"""
from typing import Optional, Sequence

import numpy as np

# OpenPose-18 joint i comes from BlazePose joint BLAZE_TO_OPENPOSE[i]; None = neck,
# the midpoint of the two shoulders (11, 12).
BLAZE_TO_OPENPOSE = [0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7]
OPENPOSE_NAMES = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
                  "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear"]
# Limbs (1-based in the OpenPose reference code; 0-based here) and their colours, as ControlNet draws them.
OPENPOSE_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
                  (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
OPENPOSE_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
                   (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
                   (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]


def blazepose_to_openpose18(landmarks33, width: int, height: int, min_visibility: float = 0.3) -> np.ndarray:
    """BlazePose landmarks [33, >=2] (x, y normalised 0..1, optional visibility in column 3)
    -> OpenPose-18 array [18, 3] of (x_px, y_px, confidence); hidden joints are (0, 0, 0)."""
    lm = np.asarray(landmarks33, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != 33 or lm.shape[1] < 2:
        raise ValueError(f"Expected 33 BlazePose landmarks of shape [33, >=2], got {lm.shape}.")
    vis = lm[:, 3] if lm.shape[1] >= 4 else np.ones(33)
    out = np.zeros((18, 3))
    for i, src in enumerate(BLAZE_TO_OPENPOSE):
        if src is None:  # neck: midpoint of the shoulders
            xy, conf = (lm[11, :2] + lm[12, :2]) / 2.0, min(vis[11], vis[12])
        else:
            xy, conf = lm[src, :2], vis[src]
        inside = 0.0 <= xy[0] <= 1.0 and 0.0 <= xy[1] <= 1.0
        if conf >= min_visibility and inside:
            out[i] = (xy[0] * width, xy[1] * height, conf)
    return out


def openpose_json(people_keypoints: Sequence, width: int, height: int) -> dict:
    """One image's POSE_KEYPOINT entry from a list of [18, 3] pixel keypoint arrays."""
    people = []
    for kp in people_keypoints:
        kp = np.asarray(kp, dtype=np.float64).reshape(18, 3)
        people.append({
            "pose_keypoints_2d": [float(v) for v in kp.reshape(-1)],
            "face_keypoints_2d": None,
            "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None,
        })
    return {"people": people, "canvas_width": int(width), "canvas_height": int(height)}


def people_from_json(pose_json: dict) -> list:
    """[18, 3] pixel arrays from one POSE_KEYPOINT entry (normalised coordinates are scaled up)."""
    width, height = int(pose_json.get("canvas_width", 512)), int(pose_json.get("canvas_height", 512))
    out = []
    for person in pose_json.get("people", []):
        flat = person.get("pose_keypoints_2d") or []
        kp = np.zeros((18, 3))
        arr = np.asarray(flat, dtype=np.float64).reshape(-1, 3)[:18]
        kp[: len(arr)] = arr
        visible = kp[:, 2] > 0
        if visible.any() and kp[visible, :2].max() <= 1.0:  # normalised flavour
            kp[:, 0] *= width
            kp[:, 1] *= height
        out.append(kp)
    return out


def render_openpose(pose_json: dict, stick_width: int = 4, radius: int = 4,
                    size: Optional[tuple] = None) -> np.ndarray:
    """Draw one POSE_KEYPOINT entry as ControlNet's OpenPose image: uint8 [H, W, 3] on black."""
    from PIL import Image, ImageDraw

    width, height = size or (int(pose_json.get("canvas_width", 512)), int(pose_json.get("canvas_height", 512)))
    canvas = np.zeros((height, width, 3), dtype=np.float64)
    for kp in people_from_json(pose_json):
        for li, (a, b) in enumerate(OPENPOSE_LIMBS):
            if kp[a, 2] <= 0 or kp[b, 2] <= 0:
                continue
            # ControlNet draws limbs as filled ellipses at 60 % opacity over what is already drawn.
            limb = Image.new("L", (width, height), 0)
            ImageDraw.Draw(limb).polygon(_limb_ellipse(kp[a, :2], kp[b, :2], stick_width), fill=1)
            inside = np.asarray(limb, dtype=bool)
            canvas[inside] = 0.4 * canvas[inside] + 0.6 * np.asarray(OPENPOSE_COLORS[li], dtype=np.float64)
        joints = Image.fromarray(np.round(canvas).astype(np.uint8))
        draw = ImageDraw.Draw(joints)
        for j in range(18):
            if kp[j, 2] > 0:
                x, y = int(kp[j, 0]), int(kp[j, 1])
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=OPENPOSE_COLORS[j])
        canvas = np.asarray(joints, dtype=np.float64)
    return np.round(canvas).astype(np.uint8)


def _limb_ellipse(a, b, half_width: int, steps: int = 360) -> list:
    """Outline of the ellipse joining joints a and b (semi-axes: half their distance, half_width)."""
    centre = (np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)) / 2
    half_length = float(np.hypot(*(np.asarray(a) - np.asarray(b)))) / 2
    angle = np.arctan2(a[1] - b[1], a[0] - b[0])
    t = np.linspace(0.0, 2 * np.pi, steps, endpoint=False)
    x, y = half_length * np.cos(t), half_width * np.sin(t)
    xs = centre[0] + x * np.cos(angle) - y * np.sin(angle)
    ys = centre[1] + x * np.sin(angle) + y * np.cos(angle)
    return list(zip(np.round(xs), np.round(ys)))

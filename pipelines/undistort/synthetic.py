"""Synthetic ground truth for the undistortion: one 3D face seen by a near and a far camera.

A metric face shape (e.g. a face mesh of a real photo, scaled to the 63 mm interocular
prior) is placed in front of a pinhole camera; its landmarks are projected by the near
camera (the selfie) and by the far camera of eq. 3.3 (k times further away, focal length
k times longer). A perfect corrector moves the near projections onto the far ones.
"""
from dataclasses import dataclass

import numpy as np

from .geometry import INTEROCULAR_M
from .landmarks import eye_centers, interocular_px

HEAD_PIVOT_M = 0.09  # yaw turns the head about a point ~9 cm behind the eyes


def metric_face(points_px: np.ndarray) -> np.ndarray:
    """Face-mesh landmarks [N, 3] (pixels) -> metres, eyes' midpoint at the origin, y down, z away."""
    right, left = eye_centers(points_px)
    mid = (right + left) / 2.0
    return (points_px - mid) * (INTEROCULAR_M / interocular_px(points_px))


@dataclass
class SyntheticView:
    near_px: np.ndarray  # [N, 3] near landmarks as a face-mesh node gives them (x, y, z_px)
    far_px: np.ndarray  # [N, 2] far projections (ground truth)
    eye_distance_m: float
    focal_px: float


def _yaw(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def place(face_m: np.ndarray, distance_m: float, yaw_deg: float = 0.0, offset_m: tuple = (0.0, 0.0)) -> tuple:
    """Camera-space points [N, 3] of the face turned by ``yaw_deg`` about its pivot and put ``distance_m``
    in front of the camera (plus an x/y offset), and the eyes' depth."""
    pivot = np.array([0.0, 0.0, HEAD_PIVOT_M])
    world = (face_m - pivot) @ _yaw(yaw_deg).T + pivot + np.array([offset_m[0], offset_m[1], distance_m])
    right, left = eye_centers(world)
    return world, float((right[2] + left[2]) / 2.0)


def view(face_m: np.ndarray, distance_m: float, focal_px: float, size: tuple, far_m: float = 3.0,
         yaw_deg: float = 0.0, offset_m: tuple = (0.0, 0.0)) -> SyntheticView:
    """Project ``face_m`` placed ``distance_m`` in front of the camera (plus an x/y offset)."""
    width, height = size
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    world, d_eye = place(face_m, distance_m, yaw_deg, offset_m)
    near_xy = c + focal_px * world[:, :2] / world[:, 2:3]
    z_px = (world[:, 2] - d_eye) * focal_px / d_eye  # mediapipe-like relative depth in pixels
    k = far_m / d_eye
    far_xy = c + (k * focal_px) * world[:, :2] / (world[:, 2:3] + far_m - d_eye)
    return SyntheticView(np.column_stack([near_xy, z_px]), far_xy, float(d_eye), float(focal_px))

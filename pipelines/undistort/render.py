"""Textured-mesh renders of a face for an independent undistortion truth (bench and tests).

The eq. 3.3 model the corrector applies cannot check itself, so the truth is an image: the
face mesh of a real photo (metric, see synthetic.metric_face), textured with the photo's
pixels at its landmarks, rendered by a near camera and by the far camera, and the face mesh
detected again on both renders. The rasteriser is plain numpy: pinhole projection, pixel
centres at integer coordinates, barycentric coverage, perspective-correct attributes and a
z-buffer; supersampling averages ss x ss samples per pixel.
"""
from dataclasses import dataclass

import numpy as np

from .synthetic import metric_face, place


@dataclass
class TexturedMesh:
    vertices: np.ndarray  # [V, 3] metres, eyes' midpoint at the origin, y down, z away from the camera
    triangles: np.ndarray  # [T, 3] vertex indices
    uv: np.ndarray  # [V, 2] texture pixel coordinates (x, y)
    texture: np.ndarray  # [Ht, Wt, 3] float 0..1


def face_mesh_from_photo(points_px: np.ndarray, photo: np.ndarray) -> TexturedMesh:
    """Mesh of face-mesh landmarks [N, 3] (pixels) of ``photo`` [H, W, 3]: a Delaunay triangulation of
    the landmarks' image positions (the photo is near-frontal, so it is the face's own surface)."""
    from scipy.spatial import Delaunay

    triangles = Delaunay(points_px[:, :2]).simplices.astype(np.int64)
    return TexturedMesh(metric_face(points_px), triangles, points_px[:, :2].astype(np.float64),
                        np.asarray(photo, dtype=np.float32))


def project(points_cam: np.ndarray, focal_px: float, center: tuple) -> np.ndarray:
    """Pinhole projection of camera-space points [N, 3] (z forward) to pixels [N, 2]."""
    return np.asarray(center, dtype=np.float64) + focal_px * points_cam[:, :2] / points_cam[:, 2:3]


def rasterize(xy: np.ndarray, z: np.ndarray, triangles: np.ndarray, height: int, width: int) -> tuple:
    """Visible triangle and perspective-correct barycentrics per pixel.

    xy [V, 2] projected vertices (pixels), z [V] their camera depths. A pixel centre (x, y) is
    covered when its screen-space barycentrics are all >= 0; the nearest covering triangle wins.
    Returns (triangle index [H, W], -1 where none; weights [H, W, 3] for that triangle's vertices).
    """
    tri_id = np.full((height, width), -1, dtype=np.int64)
    weights = np.zeros((height, width, 3))
    inv_depth = np.zeros((height, width))  # 1/z of the nearest surface so far (0 = nothing)
    for t, (a, b, c) in enumerate(triangles):
        pa, pb, pc = xy[a], xy[b], xy[c]
        area = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0])
        if abs(area) < 1e-12:
            continue
        x0, x1 = max(int(np.ceil(min(pa[0], pb[0], pc[0]))), 0), min(int(np.floor(max(pa[0], pb[0], pc[0]))), width - 1)
        y0, y1 = max(int(np.ceil(min(pa[1], pb[1], pc[1]))), 0), min(int(np.floor(max(pa[1], pb[1], pc[1]))), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1, dtype=np.float64), np.arange(y0, y1 + 1, dtype=np.float64))
        # screen-space barycentrics from the edge functions, normalised by the signed area
        la = ((pb[0] - gx) * (pc[1] - gy) - (pb[1] - gy) * (pc[0] - gx)) / area
        lb = ((pc[0] - gx) * (pa[1] - gy) - (pc[1] - gy) * (pa[0] - gx)) / area
        lc = 1.0 - la - lb
        inside = (la >= 0) & (lb >= 0) & (lc >= 0)
        # 1/z is affine in screen space; attributes weighted by l_i / z_i are perspective-correct
        wa, wb, wc = la / z[a], lb / z[b], lc / z[c]
        inv = wa + wb + wc
        region = inv_depth[y0:y1 + 1, x0:x1 + 1]
        win = inside & (inv > region)
        region[win] = inv[win]
        tri_id[y0:y1 + 1, x0:x1 + 1][win] = t
        weights[y0:y1 + 1, x0:x1 + 1][win] = np.stack([wa, wb, wc], axis=-1)[win] / inv[win, None]
    return tri_id, weights


def render(mesh: TexturedMesh, world: np.ndarray, focal_px: float, size: tuple, supersample: int = 3,
           background: float = 0.5) -> np.ndarray:
    """Image [H, W, 3] float of the mesh with vertices at camera-space ``world`` [V, 3] (metres), seen by
    a pinhole camera of focal ``focal_px`` centred on the image (the convention of synthetic.view)."""
    from scipy.ndimage import map_coordinates

    width, height = size
    ss = supersample
    # the supersampled grid's pixel centres: x_ss = (x + 0.5) * ss - 0.5
    center = (((width - 1) / 2.0 + 0.5) * ss - 0.5, ((height - 1) / 2.0 + 0.5) * ss - 0.5)
    xy = project(world, focal_px * ss, center)
    tri_id, weights = rasterize(xy, world[:, 2], mesh.triangles, height * ss, width * ss)
    covered = tri_id >= 0
    corners = mesh.triangles[tri_id[covered]]  # [P, 3]
    uv = (mesh.uv[corners] * weights[covered][..., None]).sum(axis=1)  # [P, 2]
    image = np.full((height * ss, width * ss, 3), background, dtype=np.float64)
    for ch in range(3):
        image[covered, ch] = map_coordinates(mesh.texture[..., ch], [uv[:, 1], uv[:, 0]], order=1, mode="nearest")
    return image.reshape(height, ss, width, ss, 3).mean(axis=(1, 3)).astype(np.float32)


def near_and_far(mesh: TexturedMesh, distance_m: float, focal_px: float, size: tuple, far_m: float = 3.0,
                 yaw_deg: float = 0.0, offset_m: tuple = (0.0, 0.0), supersample: int = 3) -> tuple:
    """Renders (near, far) of the posed mesh: the far camera sits on the same axis far_m from the eyes
    with its focal length scaled by far_m / eye distance (thesis eq. 3.3), like synthetic.view."""
    world, d_eye = place(mesh.vertices, distance_m, yaw_deg, offset_m)
    near = render(mesh, world, focal_px, size, supersample)
    far_world = world + np.array([0.0, 0.0, far_m - d_eye])
    far = render(mesh, far_world, focal_px * far_m / d_eye, size, supersample)
    return near, far

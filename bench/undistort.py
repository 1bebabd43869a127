"""Face undistortion benchmark: speed at 512² and landmark error on synthetic ground truth.

Synthetic set: the face meshes of two real photos (skimage astronaut, matplotlib
grace_hopper), scaled to the 63 mm interocular prior, placed 0.25-0.45 m from a 70° camera
with yaw and offsets; near projections are corrected towards the far camera of eq. 3.3
(3 m, focal scaled by distance). Error = mean distance (px) of every landmark, moved by
the dense warp, to its far projection; "before" = without correction. Distances are
estimated from the FOV and the prior, as in normal use. The learned corrector (the
thesis' reference) needs weights that are not available offline, so only ours is measured.

    .venv/bin/python bench/undistort.py
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.undistort import UndistortSettings, detect_landmarks, undistort_faces  # noqa: E402
from pipelines.undistort.geometry import focal_from_fov  # noqa: E402
from pipelines.undistort.landmarks import FaceMeshDetector  # noqa: E402
from pipelines.undistort.synthetic import metric_face, view  # noqa: E402
from pipelines.undistort.warp import invert_map_at  # noqa: E402

SIZE = 512
CASES = [(d, yaw, off) for d in (0.25, 0.3, 0.45) for yaw in (-15, 0, 15) for off in ((0.0, 0.0), (0.04, -0.03))]


def photos():
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    hopper = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((SIZE, SIZE))
    for rgb in (data.astronaut(), np.asarray(hopper)):
        yield torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]


def synthetic_errors(images):
    before, after = [], []
    f = focal_from_fov(70, SIZE, SIZE)
    for image in images:
        face = metric_face(detect_landmarks(image)[0][0])
        for distance, yaw, offset in CASES:
            v = view(face, distance, f, (SIZE, SIZE), far_m=3.0, yaw_deg=yaw, offset_m=offset)
            result = undistort_faces(image, UndistortSettings(fov_deg=70, far_m=3.0), landmarks=[[v.near_px]])
            moved = invert_map_at(result.sampling_maps[0], v.near_px[:, :2])
            before.append(np.linalg.norm(v.near_px[:, :2] - v.far_px, axis=1).mean())
            after.append(np.linalg.norm(moved - v.far_px, axis=1).mean())
    return float(np.mean(before)), float(np.mean(after))


def ms_per_image(image, repeats=10):
    detector = FaceMeshDetector()  # model load excluded, as in a running server
    settings = UndistortSettings(distance_m=0.3)
    undistort_faces(image, settings, detector=detector)
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        undistort_faces(image, settings, detector=detector)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    # CPU time (all threads) is printed too: wall time on a shared machine says more about the neighbours.
    return statistics.median(times), statistics.median(cpu)


def main():
    torch.set_num_threads(2)
    images = list(photos())
    ms, cpu_ms = ms_per_image(images[0])
    before, after = synthetic_errors(images)
    print(f"synthetic cases: {len(CASES) * len(images)} at {SIZE}x{SIZE}")
    print(f"undistort_cpu_ms_per_image: {cpu_ms:.1f}")
    print(f"undistort_ms_per_image: {ms:.1f}")
    print(f"undistort_landmark_err_px_before: {before:.3f}")
    print(f"undistort_landmark_err_px: {after:.3f}")


if __name__ == "__main__":
    main()

"""Fit Check motion and background retrieval (thesis 4.4): IMU recording -> motion from a
database by DTW -> poses; backgrounds ranked by floor orientation; poses stood on the floor."""
import os
import re

import numpy as np
import torch
from comfy_api.latest import io

import folder_paths

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import image_to_bchw, mask_to_b1hw
from ._runtime import choice, input_path, output_device, progress, resolve_dir, save_path
from ._types import PoseKeypoint

CATEGORY = "Recompose/Fit Check"
MotionQuery = io.Custom("RECOMPOSE_MOTION_QUERY")
MotionDB = io.Custom("RECOMPOSE_MOTION_DB")
BUILT_IN = "built-in synthetic"
ACCELERATION_UNITS = ["auto", "m/s^2", "g"]
ANGLE_UNITS = ["auto", "radians", "degrees"]
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _input_recordings() -> list:
    """CSV and zip files, and sensor-logger export folders, in ComfyUI's input folder."""
    from ..pipelines.motion.recording import is_export_folder

    folder = folder_paths.get_input_directory()
    entries = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    names = [f for f in entries if f.lower().endswith((".csv", ".zip")) or is_export_folder(os.path.join(folder, f))]
    return names or ["(put a .csv, .zip or export folder of a recording into ComfyUI's input folder)"]


def _database_folders() -> list:
    found = []
    for root in folder_paths.get_folder_paths("recompose_motion"):
        if os.path.isdir(root):
            found += sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    return [BUILT_IN] + found


def _render(poses: list) -> torch.Tensor:
    from ..pipelines.common.pose import render_openpose

    frames = np.stack([render_openpose(p) for p in poses]).astype(np.float32) / 255.0
    return torch.from_numpy(frames).to(output_device())


class RecomposeLoadIMU(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeLoadIMU",
            display_name="Load IMU Recording",
            category=CATEGORY,
            description="Reads a phone motion recording (a CSV from sensor-logger apps: time, orientation as "
                        "quaternion, yaw/pitch/roll or Android azimuth, user acceleration; or a Sensor Logger "
                        "export folder/zip of per-sensor files, joined by time) and turns it into the yaw and "
                        "ground translation that motion retrieval matches (acceleration low-passed and "
                        "integrated twice, velocity drift removed where the person stands still, yaw unwrapped).",
            inputs=[
                io.Combo.Input("recording", options=_input_recordings(),
                               tooltip="In ComfyUI's input folder: one joined .csv, or a sensor-logger export "
                                       "(Orientation.csv + Accelerometer.csv ...) as a folder or a .zip."),
                io.Float.Input("fps", default=30.0, min=5.0, max=240.0, step=1.0,
                               tooltip="Rate the recording is resampled to."),
                io.Combo.Input("acceleration_unit", options=ACCELERATION_UNITS,
                               tooltip="auto: g for iOS CoreMotion columns (motionUserAcceleration*), else m/s^2."),
                io.Combo.Input("angle_unit", options=ANGLE_UNITS,
                               tooltip="Unit of yaw/pitch/roll columns (auto: degrees when values exceed 2*pi)."),
            ],
            outputs=[
                MotionQuery.Output(display_name="motion", tooltip="The recorded yaw and translation."),
                io.String.Output(display_name="report", tooltip="Duration, samples and any clean-up notes."),
            ],
        )

    @classmethod
    def execute(cls, recording, fps, acceleration_unit, angle_unit) -> io.NodeOutput:
        from ..pipelines.motion.recording import recording_to_trajectory

        choice(acceleration_unit, ACCELERATION_UNITS, "Load IMU Recording", "acceleration_unit")
        choice(angle_unit, ANGLE_UNITS, "Load IMU Recording", "angle_unit")
        path = input_path(recording, "recording")
        if not os.path.exists(path):  # a .csv, a .zip or an export folder
            raise InputError(f"No recording '{recording}' in ComfyUI's input folder ({folder_paths.get_input_directory()}).")
        traj, notes = recording_to_trajectory(path, fps, acceleration_unit, angle_unit)
        report = (f"{recording}: {traj.duration_s:.1f} s, {len(traj)} samples at {fps:g} fps, "
                  f"turned {np.degrees(traj.yaw[-1]):.0f} deg, moved {np.linalg.norm(traj.translation[-1]):.2f} m")
        return io.NodeOutput(traj, "; ".join([report] + notes))


class RecomposeMotionDatabase(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeMotionDatabase",
            display_name="Motion Database",
            category=CATEGORY,
            description="A database of pose sequences with per-frame yaw and root translation. 'built-in "
                        "synthetic' generates procedural fit-check motions (walks, turns, twirls, side steps); "
                        "other entries are folders of clip JSON files in models/recompose/motion (build them "
                        "with 'python -m pipelines.motion.database build').",
            inputs=[
                io.Combo.Input("database", options=_database_folders(),
                               tooltip="Built-in procedural motions, or a folder in models/recompose/motion."),
                io.Int.Input("synthetic_clips", default=120, min=6, max=5000,
                             tooltip="How many procedural clips the built-in database holds."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1,
                             tooltip="Seed of the built-in procedural motions."),
                io.Int.Input("size", default=512, min=64, max=2048, step=8,
                             tooltip="Canvas size of the built-in clips' poses, in pixels."),
            ],
            outputs=[MotionDB.Output(display_name="motion_db", tooltip="The indexed motion database.")],
        )

    @classmethod
    def execute(cls, database, synthetic_clips, seed, size) -> io.NodeOutput:
        from ..pipelines.motion.database import MotionDatabase
        from ..pipelines.motion.retrieval import MotionIndex

        if database == BUILT_IN:
            bar = progress(2 * synthetic_clips)  # clips, then their features; every step a cancel point
            db = MotionDatabase.synthetic(synthetic_clips, seed=seed, size=size, progress=bar)
        else:
            folder = resolve_dir("recompose_motion", database, "database")
            count = sum(f.endswith(".json") for f in os.listdir(folder))
            bar = progress(2 * count)
            db = MotionDatabase.load(folder, progress=bar)
        index = MotionIndex([c.trajectory for c in db.clips], [c.name for c in db.clips], progress=bar)
        return io.NodeOutput((db, index))


class RecomposeRetrieveMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeRetrieveMotion",
            display_name="Retrieve Motion (IMU, DTW)",
            category=CATEGORY,
            description="Ranks the database motions against a recording by D = DTW(yaw) + alpha * "
                        "DTW(translation) (thesis eq. 4.1; yaw compared on the circle; translation compared as "
                        "its velocity less its 1 s mean, times 8 s, which phone double integration drifts far less "
                        "than position; "
                        "DTW in C with lower-bound pruning) and outputs the chosen one's pose sequence.",
            inputs=[
                MotionDB.Input("motion_db", tooltip="From 'Motion Database'."),
                MotionQuery.Input("motion", tooltip="From 'Load IMU Recording'."),
                io.Int.Input("top_k", default=5, min=1, max=100, tooltip="How many matches the report lists."),
                io.Int.Input("pick", default=0, min=0, max=99,
                             tooltip="Which of the ranked matches to output (0 = the best)."),
                io.Float.Input("alpha", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Weight of the translation DTW against the yaw DTW (thesis: 0.1)."),
                io.Int.Input("max_frames", default=0, min=0, max=10000,
                             tooltip="Keep at most this many pose frames (0 = all)."),
            ],
            outputs=[
                PoseKeypoint.Output(display_name="poses", tooltip="The retrieved motion's OpenPose frames."),
                io.Image.Output(display_name="pose_images", tooltip="The poses drawn as OpenPose images."),
                io.String.Output(display_name="report", tooltip="The ranked matches with their distances."),
            ],
        )

    @classmethod
    def execute(cls, motion_db, motion, top_k, pick, alpha, max_frames) -> io.NodeOutput:
        from ..pipelines.motion.retrieval import BATCH, dtw_retrieve

        db, index = motion_db
        k = max(top_k, pick + 1)
        matches = dtw_retrieve(motion, index, k=k, alpha=alpha, progress=progress(-(-len(index) // BATCH)))
        if pick >= len(matches):
            raise InputError(f"pick={pick} but the database has only {len(matches)} motions.")
        clip = db.clips[matches[pick].index]
        poses = clip.poses[:max_frames] if max_frames else clip.poses
        lines = [f"{r}. {m.name}: D={m.distance:.3f} (yaw {m.yaw_distance:.3f}, translation "
                 f"{m.translation_distance:.3f})" for r, m in enumerate(matches[:top_k])]
        report = f"picked #{pick}: {clip.name} ({len(poses)} frames)\n" + "\n".join(lines)
        return io.NodeOutput(poses, _render(poses), report)


def _depth_plane(image: torch.Tensor) -> np.ndarray:
    return image_to_bchw(image).mean(1).cpu().numpy()


class RecomposeRankBackgrounds(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeRankBackgrounds",
            display_name="Rank Backgrounds by Floor",
            category=CATEGORY,
            description="Fits the floor plane of each candidate background (RANSAC on its depth map, "
                        "back-projected through a pinhole camera) and ranks them by the angle between their floor "
                        "normal and the reference floor's (the background the motion was captured in).",
            inputs=[
                io.Image.Input("backgrounds", tooltip="Candidate background images (a batch)."),
                io.Image.Input("depths", tooltip="Depth maps of the candidates (any depth node; same batch and size)."),
                io.Mask.Input("floors", tooltip="Floor masks of the candidates (any segmentation node)."),
                io.Image.Input("reference_depth", tooltip="Depth map of the motion's original background."),
                io.Mask.Input("reference_floor", tooltip="Floor mask of the motion's original background."),
                io.Float.Input("fov_degrees", default=60.0, min=10.0, max=150.0,
                               tooltip="Horizontal field of view assumed for back-projection."),
                io.Boolean.Input("inverse_depth", default=True,
                                 tooltip="On for relative inverse depth (brighter = nearer, as MiDaS/Depth Anything); "
                                         "off for metric depth."),
            ],
            outputs=[
                io.Image.Output(display_name="ranked", tooltip="Backgrounds, closest floor orientation first."),
                io.Int.Output(display_name="best_index", tooltip="Batch index of the best background."),
                io.String.Output(display_name="report", tooltip="Each background's angle to the reference floor."),
            ],
        )

    @classmethod
    def execute(cls, backgrounds, depths, floors, reference_depth, reference_floor, fov_degrees,
                inverse_depth) -> io.NodeOutput:
        from ..pipelines.motion.background import ground_normal, rank_backgrounds

        n = backgrounds.shape[0]
        if depths.shape[0] != n or floors.shape[0] != n:
            raise InputError(f"{n} backgrounds but {depths.shape[0]} depth maps and {floors.shape[0]} floor masks; "
                             "give one of each per background.")
        ref = ground_normal(_depth_plane(reference_depth)[0], mask_to_b1hw(reference_floor)[0, 0].cpu().numpy(),
                            fov_degrees, inverse_depth)
        depth_np, floor_np = _depth_plane(depths), mask_to_b1hw(floors)[:, 0].cpu().numpy()
        bar = progress(n)
        normals = []
        for i in range(n):
            normals.append(ground_normal(depth_np[i], floor_np[i], fov_degrees, inverse_depth))
            bar.step()
        ranking = rank_backgrounds(ref, normals)
        order = [i for i, _ in ranking]
        report = "\n".join(f"#{i}: {a:.1f} deg" for i, a in ranking)
        return io.NodeOutput(backgrounds[order], order[0], report)


class RecomposePlacePoses(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePlacePoses",
            display_name="Stand Poses on Floor",
            category=CATEGORY,
            description="Scales and translates a pose sequence (one transform for every frame, so the motion "
                        "is kept) so the person has the chosen height and the feet stand on the floor mask.",
            inputs=[
                PoseKeypoint.Input("poses", tooltip="POSE_KEYPOINT frames, e.g. from 'Retrieve Motion'."),
                io.Mask.Input("floor", tooltip="Floor mask of the target background; its size sets the canvas."),
                io.Float.Input("height_fraction", default=0.6, min=0.05, max=1.0, step=0.01,
                               tooltip="Person height in the first frame, as a fraction of the image height."),
            ],
            outputs=[
                PoseKeypoint.Output(display_name="poses", tooltip="The placed POSE_KEYPOINT frames."),
                io.Image.Output(display_name="pose_images", tooltip="The placed poses drawn as OpenPose images."),
            ],
        )

    @classmethod
    def execute(cls, poses, floor, height_fraction) -> io.NodeOutput:
        from ..pipelines.motion.background import place_on_ground

        placed = place_on_ground(poses, mask_to_b1hw(floor)[0, 0].cpu().numpy(), height_fraction)
        return io.NodeOutput(placed, _render(placed))


class RecomposeBuildMotionClip(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeBuildMotionClip",
            display_name="Build Motion Clip (mediapipe)",
            category=CATEGORY,
            description="Adds a video of a person to a motion database: mediapipe pose on every frame gives "
                        "the OpenPose keypoints and 3D world landmarks (body yaw); hip position and apparent "
                        "height give the ground translation. Saved as <database>/<name>.json in "
                        "models/recompose/motion, where 'Motion Database' lists it.",
            inputs=[
                io.Image.Input("frames", tooltip="Video frames of one person, full body, fixed camera."),
                io.Float.Input("fps", default=30.0, min=1.0, max=240.0, step=1.0,
                               tooltip="Frame rate of the video."),
                io.String.Input("name", default="clip_0001",
                                tooltip="Clip name (file name without .json; letters, digits, - and _)."),
                io.String.Input("database", default="my_motions",
                                tooltip="Database folder in models/recompose/motion (created if missing)."),
                io.Float.Input("body_height_m", default=1.7, min=0.5, max=2.5, step=0.01,
                               tooltip="The person's height, which scales the translation to metres."),
            ],
            outputs=[
                PoseKeypoint.Output(display_name="poses", tooltip="The clip's POSE_KEYPOINT frames."),
                io.Image.Output(display_name="pose_images", tooltip="The poses drawn as OpenPose images."),
                io.String.Output(display_name="report", tooltip="Where the clip was saved, its turn and travel."),
            ],
        )

    @classmethod
    def execute(cls, frames, fps, name, database, body_height_m) -> io.NodeOutput:
        from ..pipelines.common.images import image_to_uint8
        from ..pipelines.motion.capture import clip_from_frames
        from ..pipelines.motion.database import MotionDatabase

        for label, value in (("name", name), ("database", database)):
            if not _SAFE_NAME.fullmatch(value):
                raise InputError(f"The {label} '{value}' may only hold letters, digits, '-' and '_' (it names a file "
                                 "or folder inside the models/recompose/motion folder).")
        folder = save_path("recompose_motion", database, "database")
        save_path("recompose_motion", os.path.join(database, name + ".json"), "name")
        clip, notes = clip_from_frames(image_to_uint8(frames), fps, name, body_height_m, progress(len(frames)))
        MotionDatabase([clip], folder).save(folder)
        traj = clip.trajectory
        report = (f"saved {os.path.join(folder, name + '.json')}: {len(traj)} frames, turned "
                  f"{np.degrees(traj.yaw[-1] - traj.yaw[0]):.0f} deg, moved "
                  f"{np.linalg.norm(traj.translation[-1] - traj.translation[0]):.2f} m")
        return io.NodeOutput(clip.poses, _render(clip.poses), "; ".join([report] + notes))


NODES = [RecomposeLoadIMU, RecomposeMotionDatabase, RecomposeRetrieveMotion, RecomposeRankBackgrounds,
         RecomposePlacePoses, RecomposeBuildMotionClip]

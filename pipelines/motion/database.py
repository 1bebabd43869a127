"""Motion database: clips of pose sequences (POSE_KEYPOINT per frame) with per-frame
yaw and root translation. On disk: a folder with one ``<clip>.json`` per clip.

    python -m pipelines.motion.database build OUT_DIR --synthetic 200
    python -m pipelines.motion.database build OUT_DIR --from-poses POSE_JSON_DIR
    python -m pipelines.motion.database build OUT_DIR --from-videos VIDEO_DIR   (mediapipe pose)
"""
import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..common import InputError
from ..common.pose import people_from_json
from .synthetic import synthetic_clip
from .trajectory import Trajectory

FORMAT_VERSION = 1
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".webm", ".mkv"}


@dataclass
class MotionClip:
    name: str
    trajectory: Trajectory
    poses: list  # POSE_KEYPOINT entries, one per frame
    ground_normal: list = field(default_factory=lambda: [0.0, 1.0, 0.0])

    def to_json(self) -> dict:
        return {"version": FORMAT_VERSION, "name": self.name, "fps": self.trajectory.fps,
                "yaw": self.trajectory.yaw.round(5).tolist(),
                "translation": self.trajectory.translation.round(5).tolist(),
                "ground_normal": list(self.ground_normal), "poses": self.poses}

    @classmethod
    def from_json(cls, data: dict, source: str) -> "MotionClip":
        missing = [k for k in ("yaw", "translation", "fps", "poses") if k not in data]
        if missing:
            raise InputError(f"{source} is not a motion clip: it lacks {', '.join(missing)} "
                             "(expected keys: name, fps, yaw, translation, poses, ground_normal).")
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise InputError(f"{source} has motion format version {data['version']}; this pack reads version "
                             f"{FORMAT_VERSION}. Rebuild it with 'python -m pipelines.motion.database build'.")
        traj = Trajectory(data["yaw"], data["translation"], float(data["fps"]))
        if len(data["poses"]) != len(traj):
            raise InputError(f"{source}: {len(data['poses'])} pose frames but {len(traj)} trajectory samples.")
        return cls(data.get("name", Path(source).stem), traj, data["poses"], data.get("ground_normal", [0, 1, 0]))


class MotionDatabase:
    def __init__(self, clips: list, source: str):
        if not clips:
            raise InputError(f"The motion database {source} holds no clips.")
        self.clips = clips
        self.source = source

    def __len__(self) -> int:
        return len(self.clips)

    @classmethod
    def synthetic(cls, count: int = 120, seed: int = 0, fps: float = 30.0, size: int = 512,
                  progress=None) -> "MotionDatabase":
        """``progress`` steps once per clip (a cancel point: thousands of clips take minutes)."""
        clips = []
        for i in range(count):
            c = synthetic_clip(seed * 100_000 + i, fps, size, size)
            clips.append(MotionClip(c["name"], c["trajectory"], c["poses"], c["ground_normal"]))
            if progress is not None:
                progress.step()
        return cls(clips, f"built-in synthetic ({count} clips)")

    @classmethod
    def load(cls, folder, progress=None) -> "MotionDatabase":
        """``progress`` steps once per clip file."""
        folder = Path(folder)
        files = sorted(folder.glob("*.json"))
        if not files:
            raise InputError(f"No motion clips (*.json) in {folder}.")
        clips = []
        for f in files:
            clips.append(MotionClip.from_json(_read_json(f), str(f)))
            if progress is not None:
                progress.step()
        return cls(clips, str(folder))

    def save(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for clip in self.clips:
            (folder / f"{clip.name}.json").write_text(json.dumps(clip.to_json()))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"The motion clip {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}). "
                         "Fix or delete that file, or rebuild the database with "
                         "'python -m pipelines.motion.database build'.") from None
    except UnicodeDecodeError:
        raise InputError(f"The motion clip {path} is not UTF-8 text; delete it or rebuild the database with "
                         "'python -m pipelines.motion.database build'.") from None


def trajectory_from_poses(poses: list, fps: float, body_height_m: float = 1.7) -> Trajectory:
    """A coarse yaw and ground translation from 2D OpenPose frames of a fixed camera
    facing the person: x from the hip centre, depth from the apparent neck-to-ankle
    height, |yaw| from the shoulder span (cos yaw) and its sign from the nose's side.
    Used to index pose clips that come without motion capture."""
    yaws, xs, inv_h = [], [], []
    for i, frame in enumerate(poses):
        people = people_from_json(frame)
        if not people:
            raise InputError(f"Pose frame {i} has no person; every frame of a clip needs one.")
        kp = people[0]
        neck, ankles = kp[1, :2], kp[[10, 13], :2].mean(0)
        height_px = max(float(np.linalg.norm(ankles - neck)), 1.0) / 0.82  # neck-ankle ~ 82 % of height
        scale = body_height_m / height_px
        xs.append(kp[[8, 11], 0].mean() * scale)
        inv_h.append(1.0 / height_px)
        span = (kp[2, 0] - kp[5, 0]) * scale / 0.38  # right shoulder is on the image left when facing
        yaw = float(np.arccos(np.clip(span, -1.0, 1.0)))
        if kp[0, 2] > 0 and kp[0, 0] < neck[0]:
            yaw = -yaw
        yaws.append(yaw)
    depth = np.asarray(inv_h)[0] / np.asarray(inv_h)  # relative to the first frame's distance
    trans = np.stack([np.asarray(xs) - xs[0], -(depth - 1.0) * 4.0], 1)
    return Trajectory(np.unwrap(yaws), trans, fps)


def _build(args) -> None:
    if args.synthetic:
        db = MotionDatabase.synthetic(args.synthetic, seed=args.seed, fps=args.fps)
    elif args.from_videos:
        from .capture import clip_from_frames

        clips = []
        for f in sorted(p for p in Path(args.from_videos).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            clip, notes = clip_from_frames(_read_video(f), args.fps, f.stem)
            print(f"{f.name}: {len(clip.poses)} frames" + "".join(f"; {n}" for n in notes))
            clips.append(clip)
        db = MotionDatabase(clips, args.from_videos)
    else:
        clips = []
        for f in sorted(Path(args.from_poses).glob("*.json")):
            poses = json.loads(f.read_text())
            clips.append(MotionClip(f.stem, trajectory_from_poses(poses, args.fps), poses))
        db = MotionDatabase(clips, args.from_poses)
    db.save(args.out)
    print(f"wrote {len(db)} clips to {args.out}")


def _read_video(path: Path) -> np.ndarray:
    """RGB frames [N, H, W, 3] uint8 of the file's first video stream, through PyAV (ComfyUI requires it)."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, IndexError) as exc:  # IndexError: the file has no video stream
        raise InputError(f"{path} could not be read as a video ({exc}).") from exc
    if not frames:
        raise InputError(f"No frames could be read from {path}.")
    return np.stack(frames)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write a motion database folder")
    build.add_argument("out")
    src = build.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=int, help="number of procedural clips")
    src.add_argument("--from-poses", help="folder of POSE_KEYPOINT JSON files, one clip (list of frames) each")
    src.add_argument("--from-videos", help="folder of videos of one person each (poses and yaw by mediapipe)")
    build.add_argument("--fps", type=float, default=30.0)
    build.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _build(args)


if __name__ == "__main__":
    main()

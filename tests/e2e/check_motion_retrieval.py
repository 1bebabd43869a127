"""workflows/motion_retrieval.json: the example recording is a noisy, time-warped phone
recording of clip 7 of the built-in database, so that clip must rank first."""
from PIL import Image

from pipelines.motion.database import MotionDatabase


def check(comfy, entry):
    clip = MotionDatabase.synthetic(8, size=256).clips[7]
    texts = [t for out in entry["outputs"].values() for t in out.get("text", [])]
    ranking = next(t for t in texts if t.startswith("picked #0"))
    assert ranking.splitlines()[1].startswith(f"0. {clip.name}:"), ranking
    assert len(ranking.splitlines()) == 6  # header + top 5
    recording = next(t for t in texts if t.startswith("recompose_imu_walk.csv"))
    assert "samples at 30 fps" in recording
    (webp,) = comfy.output_files(entry)
    with Image.open(webp) as im:
        assert im.size == (256, 256)
        frames = getattr(im, "n_frames", 1)
        assert 1 < frames <= len(clip.poses)  # the encoder merges identical frames (pauses)
        im.seek(frames // 2)
        assert max(im.convert("RGB").getextrema()[c][1] for c in range(3)) > 100  # a skeleton is drawn

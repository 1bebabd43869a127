"""Motion retrieval on built-in data: a phone IMU recording -> DTW against the built-in
procedural motion database -> the best motion's poses (animated WEBP) + the ranking."""
DEMO = True


def build(wf):
    recording = wf.add("RecomposeLoadIMU", recording="recompose_imu_walk.csv")
    database = wf.add("RecomposeMotionDatabase", synthetic_clips=120, size=256)
    match = wf.add("RecomposeRetrieveMotion", motion_db=database[0], motion=recording["motion"], top_k=5)
    wf.add("SaveAnimatedWEBP", images=match["pose_images"], filename_prefix="recompose/motion_retrieval", fps=30.0)
    wf.add("PreviewAny", source=match["report"])
    wf.add("PreviewAny", source=recording["report"])

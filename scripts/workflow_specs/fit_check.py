"""Fit Check video (thesis 4.2): front and back photos + a motion retrieved from the built-in database
by a phone IMU recording -> Load Fit Check Model + Fit Check Sampler -> animated WEBP, frames, mode.

It names the released weights (stable-video-diffusion-img2vid-xt-1-1, MimicMotion_1-1.pth); the tests put tiny
ones under those names (tests/fixtures/build_fitcheck.py) and run 5 frames at 64x64, 3 steps, tiles of 5
frames (2 references + 3) overlapping by 1, so the tiled path with latent fusion runs. With the released
weights set 576x1024, 25 steps, tile_frames 16, overlap 4. The public MimicMotion weights have no background input: the mode text says so."""


def build(wf):
    front = wf.add("LoadImage", image="recompose_astronaut.jpg")
    back = wf.add("LoadImage", image="recompose_grace_hopper.jpg")
    background = wf.add("LoadImage", image="recompose_china.jpg")
    front_pose = wf.add("RecomposePersonPose", image=front["IMAGE"])
    back_pose = wf.add("RecomposePersonPose", image=back["IMAGE"])
    recording = wf.add("RecomposeLoadIMU", recording="recompose_imu_walk.csv")
    database = wf.add("RecomposeMotionDatabase", synthetic_clips=12, size=128)
    match = wf.add("RecomposeRetrieveMotion", motion_db=database[0], motion=recording["motion"], top_k=3,
                   max_frames=5)
    model = wf.add("RecomposeFitCheckLoader", svd_model="stable-video-diffusion-img2vid-xt-1-1", weights="MimicMotion_1-1.pth")
    video = wf.add("RecomposeFitCheckSampler", fitcheck_pipe=model[0], front=front["IMAGE"], back=back["IMAGE"],
                   poses=match["pose_images"], background=background["IMAGE"],
                   front_pose=front_pose["pose_image"], back_pose=back_pose["pose_image"], width=64, height=64,
                   steps=3, cfg=2.0, tile_frames=5, overlap=1, seed=0, decode_chunk=4)
    wf.add("SaveAnimatedWEBP", images=video["frames"], filename_prefix="recompose/fit_check", fps=8.0)
    wf.add("SaveImage", images=video["frames"], filename_prefix="recompose/fit_check_frame")
    wf.add("PreviewAny", source=video["mode"])

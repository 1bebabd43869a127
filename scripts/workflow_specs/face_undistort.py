"""Face undistortion on the built-in geometric corrector: photo -> Face Undistort -> saved image + mask."""
DEMO = True


def build(wf):
    photo = wf.add("LoadImage", image="recompose_grace_hopper.jpg")
    fixed = wf.add("RecomposeFaceUndistort", image=photo["IMAGE"], selfie_distance_m=0.3, far_distance_m=3.0)
    wf.add("SaveImage", images=fixed["image"], filename_prefix="recompose/face_undistort")
    mask_image = wf.add("MaskToImage", mask=fixed["face_mask"])
    wf.add("SaveImage", images=mask_image[0], filename_prefix="recompose/face_undistort_mask")

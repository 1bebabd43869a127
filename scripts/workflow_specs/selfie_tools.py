"""Total Selfie's helper steps on built-in defaults (mediapipe only, no downloaded weights):
rank candidate photos (a landscape and a portrait) against an upper-body selfie (thesis 3.5.3),
take the best one's person mask, OpenPose picture and x1.1 box mask, and align -> undistort ->
paste back the face (Fig. 3.9). Any refiner fits between crop and paste, e.g. VAE Encode ->
KSampler (denoise ~0.4) -> VAE Decode for the thesis' SDEdit appearance refinement."""
DEMO = True


def build(wf):
    selfie = wf.add("LoadImage", image="recompose_astronaut.jpg")
    other = wf.add("LoadImage", image="recompose_china.jpg")  # a landscape: no person, ranks last
    other_512 = wf.add("ImageScale", image=other["IMAGE"], upscale_method="bilinear", width=512, height=512,
                       crop="center")
    photos = wf.add("ImageBatch", image1=other_512[0], image2=selfie["IMAGE"])
    ranked = wf.add("RecomposeRankReferences", photos=photos[0], label_scheme="mediapipe coarse parts",
                    upper_selfie=selfie["IMAGE"])
    wf.add("SaveImage", images=ranked["ranked_photos"], filename_prefix="recompose/selfie_tools_ranked")
    pose = wf.add("RecomposePersonPose", image=ranked["best_photo"])
    wf.add("SaveImage", images=pose["pose_image"], filename_prefix="recompose/selfie_tools_pose")
    wf.add("SaveImage", images=pose["part_map"], filename_prefix="recompose/selfie_tools_parts")
    aligned = wf.add("RecomposeFaceAlignCrop", image=selfie["IMAGE"], size=256)
    # Align, then correct (thesis Fig. 3.9), then put the corrected face back into the photo.
    refined = wf.add("RecomposeFaceUndistort", image=aligned["aligned"], selfie_distance_m=0.3)
    pasted = wf.add("RecomposePasteCrop", image=selfie["IMAGE"], refined=refined["image"],
                    crop_geometry=aligned["crop_geometry"])
    wf.add("SaveImage", images=aligned["aligned"], filename_prefix="recompose/selfie_tools_aligned")
    wf.add("SaveImage", images=pasted["image"], filename_prefix="recompose/selfie_tools_pasted")
    # The inpainting mask of thesis 3.5.3: the reference person's box grown x1.1.
    box = wf.add("RecomposeMaskBox", mask=pose["person_mask"], scale=1.1)
    box_image = wf.add("MaskToImage", mask=box["box_mask"])
    wf.add("SaveImage", images=box_image[0], filename_prefix="recompose/selfie_tools_box")

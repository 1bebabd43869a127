"""Total Selfie, the whole pipeline (thesis 3.2.2, 3.5.3-3.5.6): four selfies + a background ->
face undistortion (mode 'auto': Total Selfie's learned corrector when its checkpoint is in
models/recompose/face, else the geometric one; the report says which ran) -> reference ranking -> person mask, x1.1 box mask and Canny edges of the part map ->
pass 1: Selfie Inpaint without ControlNet (cfg 5) gives full-body candidates I_n -> per-capture
fine-tune (selfies pasted at the candidates' body parts) -> pass 2: Selfie Inpaint with the fine-tuned
model and the ControlNet fed the selfie embedding (cfg 3) -> appearance refinement: the head region is
cut out, refined SDEdit-style by core KSampler (denoise 0.4) on any SD1.5 checkpoint, and pasted back.

It names the released weights (pbe_selfie2full, control_v11p_sd15_canny, v1-5-pruned-emaonly.safetensors);
the tests put tiny ones under those names (tests/fixtures/) and run at 256x256 with 8 steps, 2 candidates
and 2 fine-tune steps. With the released weights scale everything to 512x512, set steps 50, 20 candidates and
400 fine-tune steps (about 10 minutes on one GPU); for the refinement any SD1.5 checkpoint will do (or a
DreamBooth/LoRA of the user), a 512x512 crop, ~25 steps, Euler-Ancestral, and region "face" (here the
head of the reference pose, since the tiny weights draw no face)."""
SIZE = 256
REFINE_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
FACE_CORRECTOR = "00000196-checkpoint.pth.tar"  # Total Selfie's released name
HEAD_COLOUR = 0x800000  # the head label (1) in the part map's VOC palette


def _square(wf, image):
    return wf.add("ImageScale", image=image, upscale_method="bilinear", width=SIZE, height=SIZE, crop="center")[0]


def build(wf):
    scene = wf.add("LoadImage", image="recompose_china.jpg")
    face_photo = wf.add("LoadImage", image="recompose_grace_hopper.jpg")
    upper = wf.add("LoadImage", image="recompose_astronaut.jpg")
    lower = wf.add("LoadImage", image="recompose_chelsea.jpg")
    shoes = wf.add("LoadImage", image="recompose_coffee.jpg")
    background = _square(wf, scene["IMAGE"])

    # Face selfie: FFHQ-align, then undo the close-range perspective (thesis 3.4, Fig. 3.9) with the
    # learned corrector when 00000196-checkpoint.pth.tar is present.
    aligned = wf.add("RecomposeFaceAlignCrop", image=face_photo["IMAGE"], size=256)
    corrector = wf.add("RecomposeFaceCorrectorLoader", checkpoint=FACE_CORRECTOR)
    face = wf.add("RecomposeFaceUndistort", image=aligned["aligned"], mode="auto", selfie_distance_m=0.3,
                  corrector=corrector["corrector"])
    wf.add("PreviewAny", source=face["report"])

    # Reference photo: the candidate whose clothing matches the selfies best (3.5.3); its person gives
    # the blending mask, its x1.1 box the inpainting mask and its part map the Canny control picture.
    photos = wf.add("ImageBatch", image1=background, image2=_square(wf, upper["IMAGE"]))
    ranked = wf.add("RecomposeRankReferences", photos=photos[0], label_scheme="mediapipe coarse parts",
                    upper_selfie=upper["IMAGE"])
    person = wf.add("RecomposePersonPose", image=ranked["best_photo"])
    box = wf.add("RecomposeMaskBox", mask=person["person_mask"], scale=1.1)
    edges = wf.add("Canny", image=person["part_map"], low_threshold=0.1, high_threshold=0.3)

    pipe = wf.add("RecomposeSelfieInpaintLoader", model="pbe_selfie2full")
    controlnet = wf.add("RecomposeSelfieControlNetLoader", controlnet="control_v11p_sd15_canny")
    selfies = dict(face=face["image"], upper_body=upper["IMAGE"], lower_body=lower["IMAGE"], shoes=shoes["IMAGE"])
    tuned = _finetune(wf, pipe["selfie_pipe"], background, box["box_mask"], selfies)
    result = wf.add("RecomposeSelfieInpaint", selfie_pipe=tuned["selfie_pipe"], background=background,
                    mask=box["box_mask"], face=face["image"], upper_body=upper["IMAGE"], lower_body=lower["IMAGE"],
                    shoes=shoes["IMAGE"], steps=8, cfg=3.0, seed=0, scheduler="ddim", blend_s=0.4, dilation=21,
                    person_mask=person["person_mask"], controlnet=controlnet["controlnet"],
                    control_image=edges[0], control_scale=1.0)
    refined = _refine_head(wf, result["image"], person["part_map"])
    wf.add("SaveImage", images=refined["image"], filename_prefix="recompose/total_selfie")
    wf.add("SaveImage", images=edges[0], filename_prefix="recompose/total_selfie_control")
    mask_image = wf.add("MaskToImage", mask=box["box_mask"])
    wf.add("SaveImage", images=mask_image[0], filename_prefix="recompose/total_selfie_mask")
    wf.add("PreviewAny", source=result["log"])
    wf.add("SaveImage", images=result["image"], filename_prefix="recompose/total_selfie_unrefined")


def _finetune(wf, pipe, background, box_mask, selfies):
    """Pass 1 (no pose guidance) makes the candidates whose body parts place the selfies in the
    fine-tuning augmentations (3.5.5); the fine-tune returns a copy of the pipeline."""
    candidates = wf.add("RepeatImageBatch", image=background, amount=2)
    pass1 = wf.add("RecomposeSelfieInpaint", selfie_pipe=pipe, background=candidates[0], mask=box_mask,
                   **selfies, steps=8, cfg=5.0, seed=1, scheduler="ddim", blend_s=0.4, dilation=21)
    return wf.add("RecomposeSelfieFineTune", selfie_pipe=pipe, background=background, person=pass1["image"],
                  inpaint_mask=box_mask, **selfies, steps=2, learning_rate=5e-6, batch_size=2, augmentations=8,
                  seed=0, lora_rank=0, save_as="total_selfie_capture.safetensors")


def _refine_head(wf, image, part_map):
    """Crop -> SDEdit with core nodes -> paste back (thesis 3.5.6; strength 0.4 for the face)."""
    head = wf.add("ImageColorToMask", image=part_map, color=HEAD_COLOUR)
    crop = wf.add("RecomposeRegionCrop", image=image, region="mask", width=64, height=64, context=1.5,
                  feather=0.08, mask=head[0])
    checkpoint = wf.add("CheckpointLoaderSimple", ckpt_name=REFINE_CHECKPOINT)
    positive = wf.add("CLIPTextEncode", clip=checkpoint["CLIP"], text="a photo of a face, sharp, detailed")
    negative = wf.add("CLIPTextEncode", clip=checkpoint["CLIP"], text="blurry, deformed")
    latent = wf.add("VAEEncode", pixels=crop["crop"], vae=checkpoint["VAE"])
    sampled = wf.add("KSampler", model=checkpoint["MODEL"], seed=0, steps=3, cfg=5.0,
                     sampler_name="euler_ancestral", scheduler="normal", positive=positive[0], negative=negative[0],
                     latent_image=latent[0], denoise=0.4)
    decoded = wf.add("VAEDecode", samples=sampled[0], vae=checkpoint["VAE"])
    return wf.add("RecomposePasteCrop", image=image, refined=decoded[0], crop_geometry=crop["crop_geometry"])

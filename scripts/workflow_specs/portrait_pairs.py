"""Paired training data for MCDM (thesis 5.2.2, eq. 5.2): one side-by-side canvas [x_A | x_B] is denoised once
with the shared prompt on the whole canvas, the source prompt on the left and the target prompt on the right
(s'_d = 0.1, s'_a = s'_b = 0.9, CFG 7.5), a core OpenPose ControlNet holding both halves to the same pose; the
canvas is split into train/condition (x_A) and train/gt (x_B).

The tests run it with a tiny random SD1.5 checkpoint and ControlNet on a 128x64 canvas; with real weights use
RealisticVision, control_v11p_sd15_openpose.pth, a 1024x512 canvas (two 512x512 images) and CFG 7.5 (the tiny
random model saturates the image at 7.5, so the template runs at 2)."""
DEMO = False  # needs an SD1.5 checkpoint and an OpenPose ControlNet (tests build tiny ones)

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
CONTROLNET = "control_v11p_sd15_openpose.pth"
SIZE = 64


def build(wf):
    base = wf.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    photo = wf.add("LoadImage", image="recompose_grace_hopper.jpg")
    person = wf.add("RecomposePersonPose", image=photo["IMAGE"])
    pose = wf.add("ImageScale", image=person["pose_image"], upscale_method="bilinear", width=SIZE, height=SIZE,
                  crop="center")
    canvas_pose = wf.add("ImageStitch", image1=pose[0], image2=pose[0], direction="right", match_image_size=True,
                         spacing_width=0, spacing_color="white")
    prompts = wf.add("RecomposePairPrompts", clip=base["CLIP"], subject="woman", source="normal costume",
                     target="Santa Claus costume")
    negative = wf.add("CLIPTextEncode", clip=base["CLIP"], text="")
    controlnet = wf.add("ControlNetLoader", control_net_name=CONTROLNET)
    shared = wf.add("ControlNetApplyAdvanced", positive=prompts["shared"], negative=negative[0],
                    control_net=controlnet[0], image=canvas_pose[0], strength=1.0, start_percent=0.0,
                    end_percent=1.0)
    sides = wf.add("ControlNetApplyAdvanced", positive=prompts["source"], negative=prompts["target"],
                   control_net=controlnet[0], image=canvas_pose[0], strength=1.0, start_percent=0.0,
                   end_percent=1.0)
    guider = wf.add("RecomposePairGuider", model=base["MODEL"], shared=shared[0], source=sides[0], target=sides[1],
                    negative=shared[1], cfg=2.0, s_d=0.1, s_a=0.9, s_b=0.9)
    latent = wf.add("EmptyLatentImage", width=2 * SIZE, height=SIZE, batch_size=1)
    sampler = wf.add("KSamplerSelect", sampler_name="euler_ancestral")
    sigmas = wf.add("BasicScheduler", model=base["MODEL"], scheduler="karras", steps=20, denoise=1.0)
    noise = wf.add("RandomNoise", noise_seed=0)
    sampled = wf.add("SamplerCustomAdvanced", noise=noise[0], guider=guider[0], sampler=sampler[0],
                     sigmas=sigmas[0], latent_image=latent[0])
    canvas = wf.add("VAEDecode", samples=sampled[0], vae=base["VAE"])
    pair = wf.add("RecomposeSplitPair", canvas=canvas[0])
    wf.add("SaveImage", images=canvas[0], filename_prefix="recompose/portrait_pairs_canvas")
    wf.add("SaveImage", images=pair["source"], filename_prefix="recompose/portrait_pairs_condition")
    wf.add("SaveImage", images=pair["target"], filename_prefix="recompose/portrait_pairs_gt")
    wf.add("PreviewAny", source=prompts["target_prompt"])

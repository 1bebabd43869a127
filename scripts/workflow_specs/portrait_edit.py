"""Portrait editing with MCDM, all native (thesis ch. 5): the official unet.pth + adapter.pth as a core MODEL,
the image embedding (CLIP ViT-B/32 + pooled VAE latent) joined to the prompts, the editing mask from one step
with the target and the reconstruction prompt (10 noise draws, lambda 0.2), and mask-guided multi-condition
guidance (eq. 5.1, demo scales 3/2/4) run by core's SamplerCustomAdvanced with uni_pc, 20 steps.

The tests run it with tiny random weights in the official layout (tests/fixtures/build_portrait.py) on a
64x64 image; with the released weights use realistic-vision-v13 as the checkpoint (its CLIP text encoder and
VAE), CLIP ViT-B/32 in models/clip_vision, and scale the portrait to 512x512."""
DEMO = False  # needs the MCDM weights in models/recompose/portrait (tests build tiny ones)

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
CHECKPOINT_DIR = "outfit/checkpoint-200000"
SIZE = 64


def build(wf):
    base = wf.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    mcdm = wf.add("RecomposePortraitMCDMLoader", unet=f"{CHECKPOINT_DIR}/unet.pth",
                  adapter=f"{CHECKPOINT_DIR}/adapter.pth")
    clip_vision = wf.add("RecomposeCLIPVisionLoader", clip_name="clip_vit_base_patch32.safetensors")
    photo = wf.add("LoadImage", image="recompose_grace_hopper.jpg")
    portrait = wf.add("ImageScale", image=photo["IMAGE"], upscale_method="bicubic", width=SIZE, height=SIZE,
                      crop="center")
    target = wf.add("CLIPTextEncode", clip=base["CLIP"], text="a woman, cute flower costume")
    source = wf.add("CLIPTextEncode", clip=base["CLIP"], text="a woman, normal costume")
    empty = wf.add("CLIPTextEncode", clip=base["CLIP"], text="")
    conds = wf.add("RecomposePortraitConditioning", positive=target[0], reconstruction=source[0], negative=empty[0],
                   image=portrait[0], vae=base["VAE"], clip_vision=clip_vision[0], adapter=mcdm["adapter"])
    mask = wf.add("RecomposeEditingMask", model=mcdm["model"], target=conds["positive"],
                  reconstruction=conds["reconstruction"], latent=conds["latent"], draws=10, seed=0, steps=20,
                  noise_steps=10, threshold=0.2)
    guider = wf.add("RecomposePortraitGuider", model=mcdm["model"], positive=conds["positive"],
                    image_condition=conds["image_condition"], embedding_condition=conds["embedding_condition"],
                    negative=conds["negative"], s1=3.0, s2=2.0, s3=4.0, reconstruction=conds["reconstruction"],
                    mask=mask["mask"], mask_mode="noise (thesis)")
    sampler = wf.add("KSamplerSelect", sampler_name="uni_pc")
    sigmas = wf.add("BasicScheduler", model=mcdm["model"], scheduler="simple", steps=20, denoise=1.0)
    noise = wf.add("RandomNoise", noise_seed=0)
    sampled = wf.add("SamplerCustomAdvanced", noise=noise[0], guider=guider[0], sampler=sampler[0],
                     sigmas=sigmas[0], latent_image=conds["latent"])
    edited = wf.add("VAEDecode", samples=sampled[0], vae=base["VAE"])
    wf.add("SaveImage", images=edited[0], filename_prefix="recompose/portrait_edit")
    mask_image = wf.add("MaskToImage", mask=mask["mask"])
    wf.add("SaveImage", images=mask_image[0], filename_prefix="recompose/portrait_edit_mask")
    soft_image = wf.add("MaskToImage", mask=mask["soft_mask"])
    wf.add("SaveImage", images=soft_image[0], filename_prefix="recompose/portrait_edit_soft_mask")

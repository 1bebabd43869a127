"""Training-free mask-guided editing on a native SD1.5 checkpoint (DiffEdit generalised, thesis 5.5.3): the
editing mask from one denoising step with the target and the source prompt (10 noise draws), then img2img at
denoise 0.6 where, outside the mask, the latent is reset to the re-noised source after every step (the
official latent form), all through core's SamplerCustomAdvanced. Core ComfyUI has no DiffEdit.

The tests run it with a tiny random SD1.5 checkpoint on a 64x64 image; with a real SD1.5 file scale the
photo to 512x512 and tune the threshold (lambda; 0.2 for MCDM costumes in the thesis) on the soft mask."""
DEMO = False  # needs an SD1.5 checkpoint in models/checkpoints (tests build a tiny random one)

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SIZE = 64


def build(wf):
    base = wf.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    photo = wf.add("LoadImage", image="recompose_astronaut.jpg")
    scaled = wf.add("ImageScale", image=photo["IMAGE"], upscale_method="bicubic", width=SIZE, height=SIZE,
                    crop="center")
    latent = wf.add("VAEEncode", pixels=scaled[0], vae=base["VAE"])
    target = wf.add("CLIPTextEncode", clip=base["CLIP"], text="a woman in a Santa Claus costume")
    source = wf.add("CLIPTextEncode", clip=base["CLIP"], text="a woman in a space suit")
    negative = wf.add("CLIPTextEncode", clip=base["CLIP"], text="blurry, low quality")
    mask = wf.add("RecomposeEditingMask", model=base["MODEL"], target=target[0], reconstruction=source[0],
                  latent=latent[0], draws=10, seed=0, steps=20, noise_steps=10, threshold=0.2)
    guider = wf.add("RecomposeMaskGuidedGuider", model=base["MODEL"], positive=target[0], reconstruction=source[0],
                    negative=negative[0], cfg=7.5, mask=mask["mask"], mask_mode="latent (official)")
    sampler = wf.add("KSamplerSelect", sampler_name="uni_pc")
    sigmas = wf.add("BasicScheduler", model=base["MODEL"], scheduler="simple", steps=20, denoise=0.6)
    noise = wf.add("RandomNoise", noise_seed=0)
    sampled = wf.add("SamplerCustomAdvanced", noise=noise[0], guider=guider[0], sampler=sampler[0],
                     sigmas=sigmas[0], latent_image=latent[0])
    edited = wf.add("VAEDecode", samples=sampled[0], vae=base["VAE"])
    wf.add("SaveImage", images=edited[0], filename_prefix="recompose/diffedit_native")
    mask_image = wf.add("MaskToImage", mask=mask["mask"])
    wf.add("SaveImage", images=mask_image[0], filename_prefix="recompose/diffedit_native_mask")
    decoded_source = wf.add("VAEDecode", samples=latent[0], vae=base["VAE"])
    wf.add("SaveImage", images=decoded_source[0], filename_prefix="recompose/diffedit_native_source")
    soft_image = wf.add("MaskToImage", mask=mask["soft_mask"])
    wf.add("SaveImage", images=soft_image[0], filename_prefix="recompose/diffedit_native_soft_mask")

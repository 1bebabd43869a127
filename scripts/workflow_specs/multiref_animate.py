"""Fit Check frames with multi-reference attention on a native SD1.5 checkpoint (thesis 4.2.2-4.2.3):
the front and back selfies become frames 1 and 2 of one batch, the patched model lets every frame's
self-attention also see their tokens, and they are dropped after decoding.

The references are kept as they are while the frames are generated (a per-frame noise mask: 0 on the
two references, 1 on the frames), so their features in every step come from the selfies themselves.
The frames start from a first guess (here the background, repeated) at denoise 0.75. The tests run it
with a tiny random checkpoint at 64x64 and 3 steps; with a real SD1.5 file use 512x512 and ~25 steps
(and an AnimateDiff motion module for temporal consistency).
"""
DEMO = False  # needs an SD1.5 checkpoint in models/checkpoints (tests build a tiny random one under this name)

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SIZE = 64
FRAMES = 4


def _scaled(wf, name):
    image = wf.add("LoadImage", image=name)
    return wf.add("ImageScale", image=image["IMAGE"], upscale_method="bilinear", width=SIZE, height=SIZE,
                  crop="center")[0]


def build(wf):
    checkpoint = wf.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    front = _scaled(wf, "recompose_astronaut.jpg")
    back = _scaled(wf, "recompose_grace_hopper.jpg")
    background = _scaled(wf, "recompose_china.jpg")
    first_guess = wf.add("RepeatImageBatch", image=background, amount=FRAMES)
    batch = wf.add("RecomposePrependReferences", frames=first_guess[0], front=front, back=back)
    latent = wf.add("VAEEncode", pixels=batch["frames"], vae=checkpoint["VAE"])

    # the same layout as a mask: black (keep) for the references, white (generate) for the frames
    keep = wf.add("EmptyImage", width=SIZE, height=SIZE, batch_size=1, color=0)
    generate = wf.add("EmptyImage", width=SIZE, height=SIZE, batch_size=FRAMES, color=0xFFFFFF)
    layout = wf.add("RecomposePrependReferences", frames=generate[0], front=keep[0], back=keep[0])
    mask = wf.add("ImageToMask", image=layout["frames"], channel="red")
    masked = wf.add("SetLatentNoiseMask", samples=latent[0], mask=mask[0])

    patched = wf.add("RecomposeMultiReferenceAttention", model=checkpoint["MODEL"], frames_per_video=0,
                     front_frame=1, back_frame=2, strength=1.0)
    positive = wf.add("CLIPTextEncode", clip=checkpoint["CLIP"],
                      text="full-body photo of the person from the selfies in a room, mirror fit check")
    negative = wf.add("CLIPTextEncode", clip=checkpoint["CLIP"], text="blurry, deformed, low quality")
    sampled = wf.add("KSampler", model=patched[0], seed=0, steps=3, cfg=5.0, sampler_name="euler",
                     scheduler="normal", positive=positive[0], negative=negative[0], latent_image=masked[0],
                     denoise=0.75)
    decoded = wf.add("VAEDecode", samples=sampled[0], vae=checkpoint["VAE"])
    frames = wf.add("RecomposeDropReferences", frames=decoded[0], count=2)
    wf.add("SaveAnimatedWEBP", images=frames["frames"], filename_prefix="recompose/multiref_animate", fps=6.0)
    wf.add("SaveImage", images=frames["frames"], filename_prefix="recompose/multiref_animate_frame")

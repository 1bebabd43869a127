"""Inverse Painting, learned path: china.png -> official-layout renderer + mask generator (RP) + the offline
instruction generator -> Inverse Paint -> saved keyframes, masks and time map, plus the instructions and the
run report.

The text instructions come from 'Offline Painting Instructions' (regions of the target, named and visited back
to front), so every update gets its own instruction. The thesis' text generator is a vision-language model:
swap in 'VLM Painting Instructions' (a LLaVA folder in models/LLM) for that.

It names the released files (checkpoint-global_step-200000.ckpt / checkpoint-global_step-80000.ckpt,
realisticVisionV51_v51VAE, clip-vit-base-patch32); the tests put tiny ones under those names
(tests/fixtures/build_painting.py) and run 3 updates, 3 steps, 64 px short side. With the released weights
set steps 25, max_updates 50, short_side 512."""


def build(wf):
    target = wf.add("LoadImage", image="recompose_china.jpg")
    loaded = wf.add("RecomposePaintingRendererLoader",
                    checkpoint="renderer/ckpt/checkpoint-global_step-200000.ckpt",
                    base_model="realisticVisionV51_v51VAE", clip_model="clip-vit-base-patch32")
    painter = wf.add("RecomposePaintingRendererSettings", painter=loaded["painter"], steps=3, cfg_chunk=3)
    masks = wf.add("RecomposePaintingMaskGeneratorLoader", checkpoint="RP/checkpoint-global_step-80000.ckpt",
                   base_model="realisticVisionV51_v51VAE")
    words = wf.add("RecomposeHeuristicInstructions", regions=5, passes=3)
    paint = wf.add("RecomposeInversePaint", target=target["IMAGE"], painter=painter["painter"],
                   mask_generator=masks["mask_generator"], instructions=words["instructions"], interval_s=20.0,
                   max_updates=3, short_side=64)
    wf.add("SaveImage", images=paint["keyframes"], filename_prefix="recompose/inverse_painting_keyframe")
    wf.add("SaveImage", images=paint["time_map"], filename_prefix="recompose/inverse_painting_time_map")
    mask_images = wf.add("MaskToImage", mask=paint["masks"])
    wf.add("SaveImage", images=mask_images[0], filename_prefix="recompose/inverse_painting_mask")
    wf.add("PreviewAny", source=paint["instructions"])
    wf.add("PreviewAny", source=paint["report"])

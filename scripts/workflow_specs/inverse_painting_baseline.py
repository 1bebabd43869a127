"""Inverse Painting on the built-in defaults (no weights): china.png painted by the baseline
painter, offline region instructions and baseline masks -> keyframes, an animated WEBP
time-lapse and the time map."""
DEMO = True


def build(wf):
    target = wf.add("LoadImage", image="recompose_china.jpg")
    painter = wf.add("RecomposeBaselinePainter")
    masks = wf.add("RecomposeBaselineMaskGenerator", regions=5)
    words = wf.add("RecomposeHeuristicInstructions", regions=5, passes=3)
    run = wf.add("RecomposeInversePaint", target=target["IMAGE"], painter=painter[0], mask_generator=masks[0],
                 instructions=words[0], interval_s=20.0, max_updates=20, short_side=192)
    wf.add("SaveImage", images=run["keyframes"], filename_prefix="recompose/painting_baseline")
    wf.add("SaveAnimatedWEBP", images=run["keyframes"], filename_prefix="recompose/painting_baseline_timelapse",
           fps=4.0)
    wf.add("SaveImage", images=run["time_map"], filename_prefix="recompose/painting_baseline_timemap")
    wf.add("PreviewAny", source=run["report"])

"""Template-browser thumbnails: workflows/<name>.jpg beside each workflows/<name>.json.

ComfyUI's frontend shows <name>.jpg for a pack's templates. Each thumbnail shows the example
photos the workflow loads (scripts/harness/examples.py) under its title, and a recording the
workflow loads as its walked path (top view, read by the pack's own IMU code), so it is made
without running any model and is the same on every machine.

    .venv/bin/python scripts/make_thumbnails.py [name ...]
"""
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.harness.examples import EXAMPLES  # noqa: E402

SIZE = (512, 384)
BAR = 72


LOADERS = {"LoadImage": lambda text: Image.fromarray(text), "RecomposeLoadIMU": lambda text: walked_path(text)}


def example_inputs(workflow: dict) -> list:
    """Pictures of the examples a workflow's loaders name (photos; IMU recordings as their path),
    in node order, without repeats."""
    names = []
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        if node["type"] in LOADERS:
            name = node["widgets_values"][0]
            if name in EXAMPLES and (node["type"], name) not in names:
                names.append((node["type"], name))
    return [LOADERS[kind](EXAMPLES[name]()) for kind, name in names]


def walked_path(recording: str, size=(512, 312)) -> Image.Image:
    """Top view of a recording's walk, as the pack reads it (ground translation from the IMU),
    coloured from blue (start) to orange (end), with a dot at the start."""
    from pipelines.motion.imu import imu_to_trajectory

    trajectory, _notes = imu_to_trajectory(recording)
    points = [(float(x), float(z)) for x, z in trajectory.translation]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = 0.8 * min(size) / span
    centre = ((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2)
    pixels = [(size[0] / 2 + (px - centre[0]) * scale, size[1] / 2 - (py - centre[1]) * scale) for px, py in points]
    image = Image.new("RGB", size, (34, 38, 46))
    draw = ImageDraw.Draw(image)
    for i in range(1, len(pixels)):
        f = i / (len(pixels) - 1)
        draw.line([pixels[i - 1], pixels[i]], fill=(int(70 + 185 * f), int(140 - 20 * f), int(230 - 190 * f)), width=5)
    sx, sy = pixels[0]
    draw.ellipse([sx - 8, sy - 8, sx + 8, sy + 8], fill=(90, 150, 240))
    draw.text((12, 10), "IMU recording: walked path (top view)", fill=(210, 215, 225), font_size=18)
    return image


def thumbnail(title: str, photos: list) -> Image.Image:
    canvas = Image.new("RGB", SIZE, (24, 26, 30))
    area = (SIZE[0], SIZE[1] - BAR)
    if photos:
        width = area[0] // len(photos)
        for i, photo in enumerate(photos):
            tile = ImageOps.fit(photo.convert("RGB"), (width, area[1]), Image.Resampling.LANCZOS)
            canvas.paste(tile, (i * width, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, area[1], SIZE[0], SIZE[1]], fill=(16, 17, 20))
    draw.text((16, area[1] + 14), "Recompose", fill=(150, 160, 175), font_size=18)
    draw.text((16, area[1] + 36), title, fill=(240, 240, 240), font_size=24)
    return canvas


def main(names=None) -> None:
    for path in sorted((ROOT / "workflows").glob("*.json")):
        if names and path.stem not in names:
            continue
        title = path.stem.replace("_", " ")
        image = thumbnail(title, example_inputs(json.loads(path.read_text())))
        image.save(path.with_suffix(".jpg"), quality=85)
        print(f"wrote {path.with_suffix('.jpg').relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Template-browser thumbnails: workflows/<name>.jpg beside each workflows/<name>.json.

ComfyUI's frontend shows <name>.jpg for a pack's templates. Each thumbnail shows the example
photos the workflow loads (scripts/harness/examples.py) under its title, so it is made without
running any model and is the same on every machine.

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


def example_inputs(workflow: dict) -> list:
    """The example images a workflow's LoadImage nodes name, in node order, without repeats."""
    names = []
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        if node["type"] == "LoadImage":
            name = node["widgets_values"][0]
            if name in EXAMPLES and name not in names:
                names.append(name)
    return [Image.fromarray(EXAMPLES[n]()) for n in names]


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

"""docs/icon.png, the registry's square icon: four panels of docs/overview.jpg (selfie, pose,
painting early and last) as a 2 x 2 mosaic.

    .venv/bin/python scripts/make_icon.py
"""
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SIZE = 400
# (left, top, right, bottom) of each panel's picture in overview.jpg, mosaic order
PANELS = [(53, 5, 266, 255), (675, 5, 925, 255), (5, 285, 315, 495), (645, 285, 955, 495)]


def main() -> None:
    overview = Image.open(ROOT / "docs" / "overview.jpg").convert("RGB")
    tile = SIZE // 2
    icon = Image.new("RGB", (SIZE, SIZE))
    for i, box in enumerate(PANELS):
        picture = ImageOps.fit(overview.crop(box), (tile, tile), Image.LANCZOS)
        icon.paste(picture, ((i % 2) * tile, (i // 2) * tile))
    icon.save(ROOT / "docs" / "icon.png", optimize=True)
    print(f"wrote docs/icon.png ({SIZE}x{SIZE})")


if __name__ == "__main__":
    main()

"""CLIP image preprocessing in torch (CLIPImageProcessor's resize -> centre crop -> normalise),
so images already on the GPU need no round trip through PIL."""
import json
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipPreprocess:
    """CLIPImageProcessor's resize (shortest edge) -> centre crop -> normalise, in torch."""
    size: int
    crop: int
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD

    @classmethod
    def from_folder(cls, folder: str, image_size: int) -> "ClipPreprocess":
        path = os.path.join(folder, "preprocessor_config.json")
        if not os.path.isfile(path):
            return cls(image_size, image_size)
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        size, crop = cfg.get("size", image_size), cfg.get("crop_size", image_size)
        size = size.get("shortest_edge", size.get("height", image_size)) if isinstance(size, dict) else size
        crop = crop.get("height", image_size) if isinstance(crop, dict) else crop
        return cls(int(size), int(crop), tuple(cfg.get("image_mean", CLIP_MEAN)), tuple(cfg.get("image_std", CLIP_STD)))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in 0..1 -> [B,3,crop,crop] CLIP-normalised."""
        h, w = images.shape[-2:]
        scale = self.size / min(h, w)
        resized = F.interpolate(images, size=(max(self.crop, round(h * scale)), max(self.crop, round(w * scale))),
                                mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (resized.shape[-2] - self.crop) // 2, (resized.shape[-1] - self.crop) // 2
        cropped = resized[..., top:top + self.crop, left:left + self.crop]
        mean = cropped.new_tensor(self.mean)[:, None, None]
        std = cropped.new_tensor(self.std)[:, None, None]
        return (cropped - mean) / std

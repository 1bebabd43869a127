"""What the learned renderer and the mask generator share: both hold an SD UNet, its VAE and text
encoder, are placed together and encode canvases to latents the same way."""
import torch


class SDParts:
    """Subclasses list their modules in ``torch_modules`` and drop device-bound caches in ``_drop_caches``."""

    def torch_modules(self) -> list:
        raise NotImplementedError

    def _drop_caches(self) -> None:
        raise NotImplementedError

    @property
    def device(self):
        return next(self.unet.parameters()).device

    @property
    def dtype(self):
        return next(self.unet.parameters()).dtype

    def to(self, device=None, dtype=None):
        for m in self.torch_modules():
            m.to(device=device, dtype=dtype)
        self.text_encoder._cache.clear()
        self._drop_caches()
        return self

    def _encode(self, image01: torch.Tensor) -> torch.Tensor:
        """Images in 0..1 -> scaled VAE latents (the distribution mean, as the official code)."""
        x = (image01 * 2 - 1).to(self.device, self.vae.dtype)
        return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

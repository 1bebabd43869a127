"""The frozen parts of an SD1.5 diffusers folder that both the MCDM trainer and the pair generator use."""
import torch


def load_text_encoder(base_dir: str, device, dtype=torch.float32):
    """A function prompts -> CLIP text tokens [B, 77, D] (float32) from BASE/tokenizer and BASE/text_encoder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(base_dir, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(base_dir, subfolder="text_encoder").to(device, dtype).eval()
    text_encoder.requires_grad_(False)

    @torch.no_grad()
    def encode(prompts):
        ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(device)
        return text_encoder(ids)[0].float()

    return encode


def load_vae(base_dir: str, device, dtype=torch.float32):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(base_dir, subfolder="vae", torch_dtype=dtype).to(device).eval()
    return vae.requires_grad_(False)

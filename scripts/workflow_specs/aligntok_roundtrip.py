"""AlignTok round trip: photo -> encode (aligned DINOv2 latent) -> decode -> saved image."""
DEMO = False  # needs a trained tokenizer in models/recompose/aligntok (tests build a tiny one under this name)


def build(wf):
    photo = wf.add("LoadImage", image="recompose_astronaut.jpg")
    small = wf.add("ImageScale", image=photo["IMAGE"], upscale_method="bicubic", width=256, height=256)
    tok = wf.add("RecomposeAlignTokLoader", tokenizer_name="aligntok_f16d32.safetensors")
    latent = wf.add("RecomposeAlignTokEncode", tokenizer=tok[0], image=small[0])
    image = wf.add("RecomposeAlignTokDecode", tokenizer=tok[0], latent=latent[0], tile_size=8, tile_overlap=2)
    wf.add("SaveImage", images=image[0], filename_prefix="recompose/aligntok_roundtrip")

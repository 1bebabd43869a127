"""Recompose: ComfyUI nodes for the methods of *Reconstructing Visual Appearance and
Process by Repurposing Pretrained Diffusion Models*.

ComfyUI V3 entry point only; nothing heavy is imported until a node runs.
"""


async def comfy_entrypoint():
    from .nodes import RecomposeExtension

    return RecomposeExtension()

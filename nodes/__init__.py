"""V3 adapters: one module per method family, each exporting ``NODES``."""
from comfy_api.latest import ComfyExtension, io

from ._folders import register_model_folders


class RecomposeExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 never awaits on_load, so folders are registered here.
        register_model_folders()
        from . import fitcheck, motion, painting, painting_tools, selfie, tokenizer

        families = (selfie, fitcheck, motion, painting, painting_tools, tokenizer)
        return [node for family in families for node in family.NODES]

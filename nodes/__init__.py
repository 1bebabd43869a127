"""V3 adapters: one module per method family, each exporting ``NODES``."""
import importlib
import logging

from comfy_api.latest import ComfyExtension, io

from ._examples import install_example_inputs
from ._folders import register_model_folders

FAMILIES = ("selfie", "selfie_tools", "selfie_inpaint", "selfie_finetune", "fitcheck", "motion", "painting", "painting_tools", "painting_metrics", "painting_vlm", "tokenizer", "portrait")


class RecomposeExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 never awaits on_load, so folders are registered here.
        register_model_folders()
        install_example_inputs()
        nodes = []
        for family in FAMILIES:
            # One family failing to import (a missing optional dependency, say) must not hide the others.
            try:
                module = importlib.import_module(f".{family}", __name__)
            except Exception:
                logging.exception("Recompose: the %s nodes could not be loaded", family)
                continue
            nodes.extend(module.NODES)
        return nodes

"""Reading the MCDM ``unet.pth`` (a diffusers-layout SD1.5 UNet with ``conv_in`` widened to 8 channels, saved
through DDP so keys carry ``module.``) and describing its block structure for a diffusers -> LDM key map.

ComfyUI's own diffusers-UNet detection only knows fixed full-size layouts (4- and 9-channel SD1.5, ...), not
an 8-channel SD1.5; the structure read here feeds ComfyUI's key map (comfy.utils.unet_to_diffusers), after
which core detects the LDM-layout weights as SD15_instructpix2pix (c_concat input)."""
import re

from ..common.checkpoints import load_state_dict, strip_prefix
from ..common.errors import CheckpointFormatError
from .adapter import DDP_PREFIX

LATENT_CHANNELS = 4
MCDM_IN_CHANNELS = 2 * LATENT_CHANNELS  # noisy latent z_t + spatial embedding c_s = E(x_A)
REQUIRED_KEYS = ("conv_in.weight", "conv_in.bias", "time_embedding.linear_1.weight", "conv_out.weight",
                 "down_blocks.0.resnets.0.conv1.weight", "mid_block.resnets.0.conv1.weight",
                 "up_blocks.0.resnets.0.conv1.weight")


def read_unet(path: str) -> dict:
    """The UNet state dict without the DDP prefix; refuses files that are not an 8-channel diffusers UNet."""
    state = strip_prefix(load_state_dict(path), DDP_PREFIX)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointFormatError(path, f"Not an MCDM UNet in diffusers layout (missing {', '.join(missing)})",
                                    expected=REQUIRED_KEYS,
                                    hint="Pick unet.pth of an official checkpoint folder "
                                         "(e.g. outfit/checkpoint-200000/unet.pth) or a .safetensors with its keys.")
    channels = state["conv_in.weight"].shape[1]
    if channels != MCDM_IN_CHANNELS:
        raise CheckpointFormatError(path, f"conv_in.weight takes {channels} input channels; MCDM has "
                                          f"{MCDM_IN_CHANNELS} (latent + E(x_A))", expected=REQUIRED_KEYS)
    return state


def _count(keys, pattern: str) -> int:
    """Number of distinct indices matching ``pattern`` (a regex with one group)."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def ldm_block_structure(state: dict) -> dict:
    """The fields of an LDM unet_config that comfy.utils.unet_to_diffusers reads, counted from diffusers keys:
    res blocks per level, transformer depth per input / middle / output res block."""
    keys = list(state)
    levels = _count(keys, r"down_blocks\.(\d+)\.")
    res_blocks, depth_in = [], []
    for level in range(levels):
        n_res = _count(keys, rf"down_blocks\.{level}\.resnets\.(\d+)\.")
        res_blocks.append(n_res)
        for i in range(n_res):
            depth_in.append(_count(keys, rf"down_blocks\.{level}\.attentions\.{i}\.transformer_blocks\.(\d+)\."))
    depth_out = []
    for level in range(_count(keys, r"up_blocks\.(\d+)\.")):
        for i in range(_count(keys, rf"up_blocks\.{level}\.resnets\.(\d+)\.")):
            depth_out.append(_count(keys, rf"up_blocks\.{level}\.attentions\.{i}\.transformer_blocks\.(\d+)\."))
    return {
        "num_res_blocks": res_blocks,
        "channel_mult": [1] * levels,  # only its length is read by the key map
        "transformer_depth": depth_in,
        # ComfyUI lists output depths highest resolution first; up_blocks.0 is the lowest resolution
        "transformer_depth_output": depth_out[::-1],
        "transformer_depth_middle": _count(keys, r"mid_block\.attentions\.0\.transformer_blocks\.(\d+)\."),
    }

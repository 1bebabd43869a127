"""The fine-tuned UNet as one safetensors file, and putting it back into a pipeline.

Two kinds, told apart by their keys:
- full UNet: the diffusers ``UNet2DConditionModel`` state dict (``conv_in.weight``,
  ``down_blocks.0.attentions.0...``), saved in float16;
- LoRA: peft's adapter weights (``...attn1.to_q.lora_A.weight`` / ``lora_B``), float32.
Metadata (``format``, ``kind``, ``lora_rank``, base folder, steps, lr, ...) is informative;
a plain diffusers ``diffusion_pytorch_model.safetensors`` of the same UNet loads too.
"""
import copy
import os

import torch

from ..common.checkpoints import load_into, load_state_dict
from ..common.errors import CheckpointFormatError, InputError

FORMAT = "recompose_selfie_finetune"
FORMAT_VERSION = 1
LORA_MARK = ".lora_A."


def add_lora(unet, rank: int) -> None:
    """LoRA adapters (peft) on the attention projections; only they train afterwards."""
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise InputError("LoRA fine-tuning needs the 'peft' package, which is not installed; install it "
                         "(pip install peft) or set lora_rank to 0 to fine-tune the whole UNet.") from exc
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))


def with_unet(pipe, unet):
    """A shallow copy of ``pipe`` carrying ``unet``; the input pipe is never changed."""
    new = copy.copy(pipe)
    new.unet = unet
    return new


def save_finetuned_unet(unet, path, lora_rank: int = 0, info: dict = None) -> None:
    """Write the UNet (or its LoRA adapters) and ``info`` as metadata, atomically."""
    from safetensors.torch import save_file

    if lora_rank > 0:
        from peft.utils import get_peft_model_state_dict

        state = {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    else:
        state = {k: v.detach().to(torch.float16).cpu().contiguous() for k, v in unet.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": "lora" if lora_rank > 0 else "unet",
                "lora_rank": str(int(lora_rank))}
    metadata.update({k: str(v) for k, v in (info or {}).items()})
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    save_file(state, tmp, metadata=metadata)
    os.replace(tmp, path)  # never leave a half-written file under the final name


def read_metadata(path) -> dict:
    from safetensors import safe_open

    if not str(path).endswith(".safetensors"):
        return {}
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def apply_finetuned_unet(pipe, path):
    """A shallow copy of ``pipe`` whose UNet carries the fine-tuned weights from ``path``
    (full UNet or LoRA); ``pipe`` itself is unchanged. Raises CheckpointFormatError naming the
    file and the expected keys when the file does not fit the pipe's UNet."""
    state = load_state_dict(path)
    if not state:
        raise CheckpointFormatError(path, "The file holds no weights",
                                    hint="Pick a file written by the Total Selfie fine-tune node or CLI.")
    unet = copy.deepcopy(pipe.unet)
    if any(LORA_MARK in k for k in state):
        _load_lora(unet, state, path)
    else:
        load_into(unet, state, path, "selfie inpainting UNet (a full fine-tuned UNet of this base model)")
    return with_unet(pipe, unet)


def _load_lora(unet, state: dict, path) -> None:
    try:
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    except ImportError as exc:
        raise InputError(f"{os.path.basename(str(path))} is a LoRA fine-tune; loading it needs the 'peft' package, "
                         "which is not installed (pip install peft).") from exc
    rank = next(v.shape[0] for k, v in state.items() if LORA_MARK in k)
    add_lora(unet, rank)
    expected = get_peft_model_state_dict(unet)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise CheckpointFormatError(path, f"This LoRA does not fit the pipeline's UNet ({len(missing)} missing, "
                                          f"{len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. {first})",
                                    expected=list(expected))
    dtype = next(unet.parameters()).dtype
    set_peft_model_state_dict(unet, {k: v.to(dtype) for k, v in state.items()})
    unet.requires_grad_(False)

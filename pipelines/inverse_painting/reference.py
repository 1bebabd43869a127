"""ReferenceNet fusion (thesis 6.2.1, after Animate Anyone): the target painting's self-attention
inputs are read from ReferenceNet and concatenated to the keys/values of the matching
self-attention layers of the denoising UNet.

Two formulations of exactly the same maths:
- ``official``: ReferenceNet runs on six identical copies of the target (one per guidance branch)
  at the first denoising step of every update; every layer keeps a six-copy bank; each read runs
  self-attention over ``[x, bank]`` as queries *and* keys (2N x 2N), keeps the first N outputs,
  and recomputes the unconditional row without the bank.
- ``cached`` (ours): ReferenceNet runs once per painting on one copy; the bank's key/value
  projections are computed once and broadcast (``expand``, no copies) to the rows that use them;
  queries are only the N canvas tokens (N x 2N). The unconditional rows attend to themselves.
Because the six copies are identical and attention is permutation-invariant over keys, both give
the same output up to float rounding (checked in tests/unit/test_painting_renderer.py).
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F


class _StopReference(Exception):
    """Raised after the last bank entry is written: the rest of ReferenceNet is unused."""


def self_attention_names(unet) -> list:
    """Names of the self-attention (attn1) processors of the UNet's transformer blocks, in run order
    (down blocks, mid block, up blocks; ``attn_processors`` lists up blocks before the mid block)."""
    import re

    def order(name):
        part = 0 if name.startswith("down_blocks") else 1 if name.startswith("mid_block") else 2
        return (part, [int(x) for x in re.findall(r"\.(\d+)\.", name)])

    return sorted((n for n in unet.attn_processors if n.endswith("attn1.processor")), key=order)


def pruned_reference_prefixes(unet) -> tuple:
    """Key prefixes the official ReferenceNet drops (its output head and the last block's tail)."""
    last = [n for n in self_attention_names(unet)][-1].rsplit(".attn1.processor", 1)[0]
    block_parent = last.rsplit(".transformer_blocks.", 1)[0]
    return ("conv_norm_out.", "conv_out.", f"{last}.attn1.to_q.", f"{last}.attn1.to_k.", f"{last}.attn1.to_v.",
            f"{last}.attn1.to_out.", f"{last}.norm2.", f"{last}.attn2.", f"{last}.norm3.", f"{last}.ff.",
            f"{block_parent}.proj_out.")


def _runs(flags):
    """[(start, end, flag)] for the runs of equal values in a bool vector (branches come in blocks)."""
    vals = [bool(x) for x in flags.tolist()]
    runs, start = [], 0
    for i in range(1, len(vals) + 1):
        if i == len(vals) or vals[i] != vals[start]:
            runs.append((start, i, vals[start]))
            start = i
    return runs


def _heads_view(x, heads):
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _plain_attention(attn, h):
    q, k, v = attn.to_q(h), attn.to_k(h), attn.to_v(h)
    o = F.scaled_dot_product_attention(_heads_view(q, attn.heads), _heads_view(k, attn.heads),
                                       _heads_view(v, attn.heads))
    return _merge_heads(o)


def _out(attn, o):
    o = attn.to_out[0](o)
    return attn.to_out[1](o)


class BankWriter:
    """attn1 processor for ReferenceNet: records its input (the block's norm1 output)."""

    def __init__(self, bank: Dict[str, torch.Tensor], name: str, last: bool):
        self.bank, self.name, self.last = bank, name, last

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        self.bank[self.name] = hidden_states.detach()
        if self.last:
            raise _StopReference()
        return _out(attn, _plain_attention(attn, hidden_states))


class BankReader:
    """attn1 processor for the denoising UNet; reads ``state`` (set per call by the renderer)."""

    def __init__(self, state: "FusionState", name: str):
        self.state, self.name = state, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        st = self.state
        if not st.active:
            return _out(attn, _plain_attention(attn, hidden_states))
        if st.mode == "official":
            return self._official(attn, hidden_states)
        h = hidden_states
        q = _heads_view(attn.to_q(h), attn.heads)
        k = _heads_view(attn.to_k(h), attn.heads)
        v = _heads_view(attn.to_v(h), attn.heads)
        kb, vb = st.kv[self.name]  # [1, heads, L, d] each, computed once per painting
        parts = []
        for a, b, with_ref in st.runs:
            if with_ref:
                m = b - a
                kk = torch.cat([k[a:b], kb.expand(m, -1, -1, -1)], dim=2)
                vv = torch.cat([v[a:b], vb.expand(m, -1, -1, -1)], dim=2)
                parts.append(F.scaled_dot_product_attention(q[a:b], kk, vv))
            else:
                parts.append(F.scaled_dot_product_attention(q[a:b], k[a:b], v[a:b]))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        return _out(attn, _merge_heads(out))

    def _official(self, attn, h):
        """As the official hook: attention over cat([x, bank]) as queries and keys, first N kept;
        row 0 (unconditional) recomputed without the bank."""
        bank = self.state.bank[self.name]  # [B, L, C] (six copies)
        n = h.shape[1]
        full = torch.cat([h, bank[: h.shape[0]]], dim=1)
        o = _out(attn, _plain_attention(attn, full))[:, :n]
        o = o.clone()
        uc = ~self.state.use_ref
        if uc.any():
            o[uc] = _out(attn, _plain_attention(attn, h[uc]))
        return o


class FusionState:
    """What the readers see during a UNet call."""

    def __init__(self):
        self.active = False
        self.mode = "cached"
        self._use_ref: Optional[torch.Tensor] = None
        self.runs = []
        self.kv: Dict[str, tuple] = {}
        self.bank: Dict[str, torch.Tensor] = {}
        self.latent_cur: Optional[torch.Tensor] = None

    @property
    def use_ref(self):
        """bool [B]: which rows of the current UNet batch see the reference bank (not the unconditional one)."""
        return self._use_ref

    @use_ref.setter
    def use_ref(self, value):
        self._use_ref = value
        self.runs = _runs(value.cpu()) if value is not None else []


def install_writer(referencenet, bank: Dict[str, torch.Tensor]) -> None:
    names = self_attention_names(referencenet)
    procs = {}
    for name, proc in referencenet.attn_processors.items():
        if name in names:
            procs[name] = BankWriter(bank, name.rsplit(".processor", 1)[0], last=(name == names[-1]))
        else:
            procs[name] = proc
    referencenet.set_attn_processor(procs)


def install_readers(unet, state: FusionState) -> None:
    names = self_attention_names(unet)
    procs = {}
    for name, proc in unet.attn_processors.items():
        procs[name] = BankReader(state, name.rsplit(".processor", 1)[0]) if name in names else proc
    unet.set_attn_processor(procs)


@torch.no_grad()
def run_referencenet(referencenet, ref_latents: torch.Tensor, clip_token: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One ReferenceNet pass at timestep 0 with CLIP(target) as its context; returns the bank
    ``{attn1 module name: [B, L, C]}``. Stops right after the last entry is written."""
    bank: Dict[str, torch.Tensor] = {}
    for proc in referencenet.attn_processors.values():
        if isinstance(proc, BankWriter):
            proc.bank = bank
    t = torch.zeros((), device=ref_latents.device)
    try:
        referencenet(ref_latents, t, encoder_hidden_states=clip_token, return_dict=False)
    except _StopReference:
        pass
    return bank


@torch.no_grad()
def bank_key_values(unet, bank: Dict[str, torch.Tensor]) -> Dict[str, tuple]:
    """Project a one-copy bank with the UNet's attn1 key/value weights, once per painting."""
    kv = {}
    modules = dict(unet.named_modules())
    for name, feats in bank.items():
        attn = modules[name]
        f = feats[:1]
        kv[name] = (_heads_view(attn.to_k(f), attn.heads), _heads_view(attn.to_v(f), attn.heads))
    return kv

"""Padded batches: a sequence reversed within its own length (the backward direction of a layer)."""

from __future__ import annotations

import torch
from torch import Tensor


def reverse_padded(x: Tensor, lengths: Tensor | None, time_dim: int = 1) -> Tensor:
    """Reverse each sequence of x ((B, T, ...), or (T, B, ...) with ``time_dim=0``) within its valid length;
    padding stays in place."""
    if lengths is None:
        return x.flip(time_dim)
    T = x.shape[time_dim]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    if time_dim == 0:
        index = index.t()  # (T, B)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(time_dim, index)

"""The sequence model: input (embedding or float features) -> recurrent layer -> task head.

The data set's :class:`~rnnlab.data.DataSpec` fixes the input and output sizes and the readout:
``readout="last"`` reads the last *valid* step (the final state of the top layer: for a
bidirectional layer, forward final state ‖ backward final state), or pools over valid steps;
``readout="all"`` predicts at every step (language modelling, the copy task).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.data.base import DataSpec
from rnnlab.model.recurrent import RecurrentLayer

POOLINGS = ("last", "mean", "max")


class SequenceModel(nn.Module):
    """Embedding/input -> :class:`RecurrentLayer` -> linear head.

    ``input_observer``, when set, is called with the recurrent layer's input (B, T, I) on every
    forward: the gradient diagnostics use it to measure ‖∂L/∂x_t‖, which works for both
    implementations.
    """

    def __init__(self, cell: Callable[[int, int], RecurrentCell], spec: DataSpec, name: str = "",
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, impl: str = "unrolled", pooling: str = "last",
                 embedding_dim: int = 64, compile: bool = False, scan: bool = True,
                 param_budget: int | None = None) -> None:
        super().__init__()  # param_budget: read before building (rnnlab.model.param_budget sets hidden_size)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size < 1:
            raise ValueError(f"model.hidden_size must be a positive integer, got {hidden_size!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.name, self.spec, self.pooling = name, spec, pooling
        if spec.vocab_size is not None:
            if not isinstance(embedding_dim, int) or embedding_dim < 1:
                raise ValueError(f"embeddings.dim must be a positive integer, got {embedding_dim!r}")
            self.embedding: nn.Module = nn.Embedding(spec.vocab_size, embedding_dim, padding_idx=spec.pad_index)
            input_size = embedding_dim
        else:
            self.embedding = nn.Identity()
            input_size = spec.input_size
        self.recurrent = RecurrentLayer(cell, input_size, hidden_size, num_layers, bidirectional, dropout, impl,
                                        compile=compile, scan=scan)
        self.head = nn.Linear(hidden_size * self.recurrent.num_directions, spec.output_size)
        self.input_observer: Callable[[Tensor], None] | None = None

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T) ids or (B, T, I) features -> predictions ((B, O) or (B, T, O)) and the final state."""
        inputs = self.embedding(x)  # (B, T, I)
        if self.input_observer is not None:
            self.input_observer(inputs)
        out, state = self.recurrent(inputs, lengths, state)  # (B, T, D·H)
        if self.spec.readout == "all":
            return self.head(out), state
        return self.head(self._pool(out, lengths, state)), state

    def _pool(self, out: Tensor, lengths: Tensor | None, state: State) -> Tensor:
        D = self.recurrent.num_directions
        if self.pooling == "last":  # top layer's final h of each direction: the last valid step
            return torch.cat(list(state[0][-D:]), dim=-1)  # (B, D·H)
        if lengths is None:
            return out.mean(dim=1) if self.pooling == "mean" else out.amax(dim=1)
        valid = (torch.arange(out.shape[1], device=out.device)[None, :] < lengths.to(out.device)[:, None])
        valid = valid.unsqueeze(-1)  # (B, T, 1)
        if self.pooling == "mean":
            return (out * valid).sum(dim=1) / valid.sum(dim=1)
        return out.masked_fill(~valid, float("-inf")).amax(dim=1)

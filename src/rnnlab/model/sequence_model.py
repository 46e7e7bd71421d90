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
from rnnlab.model.auto_path import paths_by_device
from rnnlab.model.recurrent import RecurrentLayer

POOLINGS = ("last", "mean", "max")
DROPOUT_PLACEMENTS = ("all", "between_layers")
INITS = {"embedding_init": ("uniform", "normal"), "head_init": ("uniform", "torch")}


def gru_variant(layer: RecurrentLayer) -> str | None:
    """Which GRU ran, for results.json: "reset_after" (torch.nn's: fused and auto) or "textbook"; None: not a GRU."""
    if layer.impl == "fused":
        return "reset_after" if layer.rnn.mode == "GRU" else None
    reset_after = getattr(layer.cells[0], "reset_after", None)
    return None if reset_after is None else "reset_after" if reset_after else "textbook"


class SequenceModel(nn.Module):
    """Embedding/input -> :class:`RecurrentLayer` -> linear head.

    Defaults that could favour one cell are the same for every cell and recorded by :meth:`fairness`:
    ``dropout_placement="all"`` drops (with p = ``dropout``) the embeddings, the input of every stacked layer
    above the first and the top layer's output (Zaremba et al. 2014; word_language_model);
    ``"between_layers"`` only between stacked layers (torch.nn's ``dropout``). ``embedding_init="uniform"``
    and ``head_init="uniform"`` draw those weights from U(−``init_range``, ``init_range``) with a zero head
    bias (Zaremba et al.); ``"normal"`` is nn.Embedding's N(0, 1), ``"torch"`` nn.Linear's default.

    ``input_observer``, when set, is called with the recurrent layer's input (B, T, I) on every
    forward: the gradient diagnostics use it to measure ‖∂L/∂x_t‖, which works for both
    implementations.
    """

    def __init__(self, cell: Callable[[int, int], RecurrentCell], spec: DataSpec, name: str = "",
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, impl: str = "unrolled", pooling: str = "last",
                 embedding_dim: int = 64, compile: bool = False, scan: bool = True,
                 dropout_placement: str = "all", embedding_init: str = "uniform", head_init: str = "uniform",
                 init_range: float = 0.1, param_budget: int | None = None) -> None:
        super().__init__()  # param_budget: read before building (rnnlab.model.param_budget sets hidden_size)
        if dropout_placement not in DROPOUT_PLACEMENTS:
            raise ValueError(f"model.dropout_placement must be one of {DROPOUT_PLACEMENTS}, "
                             f"got {dropout_placement!r}")
        for key, value in (("embedding_init", embedding_init), ("head_init", head_init)):
            if value not in INITS[key]:
                raise ValueError(f"model.{key} must be one of {INITS[key]}, got {value!r}")
        if not float(init_range) > 0:
            raise ValueError(f"model.init_range must be > 0, got {init_range!r}")
        self.dropout_placement, self.embedding_init, self.head_init = dropout_placement, embedding_init, head_init
        self.init_range = float(init_range)
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
        outer = float(dropout) if dropout_placement == "all" else 0.0
        # token embeddings only: float features (the adding problem, pixels) are data, not learnt vectors
        self.embedding_dropout = nn.Dropout(outer if spec.vocab_size is not None else 0.0)
        self.output_dropout = nn.Dropout(outer)
        with torch.no_grad():
            if embedding_init == "uniform" and isinstance(self.embedding, nn.Embedding):
                nn.init.uniform_(self.embedding.weight, -self.init_range, self.init_range)
                if spec.pad_index is not None:
                    self.embedding.weight[spec.pad_index] = 0.0
            if head_init == "uniform":
                nn.init.uniform_(self.head.weight, -self.init_range, self.init_range)
                nn.init.zeros_(self.head.bias)
        self.input_observer: Callable[[Tensor], None] | None = None

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fairness(self) -> dict:
        """The defaults that could favour one cell over another, as this model was built (results.json)."""
        cell = self.recurrent.cell_type
        H = self.recurrent.hidden_size
        return {"recurrent_init": f"U(-1/sqrt(H), 1/sqrt(H)) = U(-{1 / H ** 0.5:.4g}, {1 / H ** 0.5:.4g})",
                "embedding_init": (f"U(-{self.init_range}, {self.init_range})" if self.embedding_init == "uniform"
                                   else "N(0, 1)") if isinstance(self.embedding, nn.Embedding) else None,
                "head_init": (f"U(-{self.init_range}, {self.init_range}), bias 0" if self.head_init == "uniform"
                              else "torch nn.Linear default"),
                "dropout": self.recurrent.dropout_p, "dropout_placement": self.dropout_placement,
                "forget_bias": self.recurrent.forget_bias, "chrono_t_max": self.recurrent.chrono_t_max,
                "cell": cell.__name__,
                "gru_variant": gru_variant(self.recurrent),
                "auto_train_path": paths_by_device(cell, H) if self.recurrent.impl == "auto" else None}

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T) ids or (B, T, I) features -> predictions ((B, O) or (B, T, O)) and the final state."""
        inputs = self.embedding_dropout(self.embedding(x))  # (B, T, I)
        if self.input_observer is not None:
            self.input_observer(inputs)
        out, state = self.recurrent(inputs, lengths, state)  # (B, T, D·H)
        out = self.output_dropout(out)
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

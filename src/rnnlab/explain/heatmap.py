"""Gate activity of a trained model over real tokens, and its top-k tokens (drawn by :mod:`.views`).

Per token, for one (layer, direction) of the recurrent layer: the mean over hidden units of each gate
(GRU r_t, z_t; LSTM i_t, f_t, o_t), ‖h_t − h_{t−1}‖ (every cell), and for language models the loss of
predicting the next token. The values come from the model's own forward pass with ``cell.record`` on
and the layer's ``observer`` hook; a fused run is inspected through ``unrolled_cells()``, so a fused GRU
keeps its reset-after form. Reading the gates (this project's convention, see ``rnnlab.cells``):
r_t → 0 resets (h̃_t ignores h_{t−1}); z_t → 1 holds the old state; f_t → 0 forgets c_{t−1}.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.nn import functional as F

from rnnlab.data.base import IGNORE_INDEX
from rnnlab.data.vocab import UNK, Vocab, tokenize
from rnnlab.explain.weights import cell_kind
from rnnlab.model.padding import reverse_padded
from rnnlab.model.sequence_model import SequenceModel
from rnnlab.training.checkpoint import load_model

GATES = {"gru": ("r", "z"), "lstm": ("i", "f", "o"), "rnn": ()}
TOPK_DEFAULT = {"gru": "r", "lstm": "f", "rnn": "dh"}  # the gate whose low values reset/forget


class DataUnavailable(RuntimeError):
    """The run's data set cannot be rebuilt here (missing files, no network for a download)."""


def load_inspectable(run_dir: str | Path) -> tuple[SequenceModel, DictConfig]:
    """The run's model running our (recording) cells, computing exactly what it was trained to."""
    model, cfg = load_model(run_dir)
    if model.recurrent.impl == "fused":
        cells = model.recurrent.unrolled_cells()  # adapted to the fused maths (a GRU: reset-after)
        model, _ = load_model(run_dir, impl="unrolled")
        model.recurrent.cells = nn.ModuleList(cells)
    return model.eval(), cfg


def encode(sentence: str, itos: list[str]) -> tuple[list[int], list[str]]:
    """Ids and the tokens they stand for; a whitespace word the vocabulary holds as is (``<eos>``,
    ``_``) is kept, others are split by :func:`~rnnlab.data.vocab.tokenize`; unknown words -> ``<unk>``."""
    vocab = Vocab(itos)
    tokens = [t for word in sentence.split() for t in ([word] if word in vocab else tokenize(word))]
    if not tokens:
        raise ValueError("the sentence has no tokens")
    unknown = [t for t in tokens if t not in vocab]
    if unknown and vocab.unk_index is None:
        raise ValueError(f"{', '.join(map(repr, unknown[:5]))} not in this run's vocabulary, which has no "
                         f"{UNK}: use tokens from {itos[:12]}{' …' if len(itos) > 12 else ''}")
    return vocab.encode(tokens), [t if t in vocab else UNK for t in tokens]


def record_pass(model: SequenceModel, x: Tensor, lengths: Tensor | None = None, layer: int = 0,
                direction: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass -> (predictions, {gate or "h": (B, T, H)} in time order) for one cell."""
    rec = model.recurrent
    if not (0 <= layer < rec.num_layers and 0 <= direction < rec.num_directions):
        raise ValueError(f"--layer must lie in [0, {rec.num_layers - 1}] and --direction in "
                         f"[0, {rec.num_directions - 1}] for this run, got {layer} and {direction}")
    cell, hs = rec.cells[layer * rec.num_directions + direction], []
    cell.record = []
    rec.observer = lambda lay, d, step, h: hs.append(h) if (lay, d) == (layer, direction) else None
    try:
        with torch.no_grad():
            pred, _ = model(x, lengths)
        steps = {k: torch.stack([r[k] for r in cell.record], dim=1) for k in (cell.record[:1] or [{}])[0]}
        steps["h"] = torch.stack(hs, dim=1)  # (B, T, H), processing order
    finally:
        cell.record, rec.observer = None, None
    if direction == 1:  # processing order -> time order
        steps = {k: reverse_padded(v, lengths) for k, v in steps.items()}
    return pred, steps


def activity(model: SequenceModel, x: Tensor, y: Tensor | None = None, lengths: Tensor | None = None,
             layer: int = 0, direction: int = 0) -> tuple[dict[str, Tensor], Tensor]:
    """Per-token rows {name: (B, T)} (gate means, dh, LM loss) and the predictions."""
    pred, steps = record_pass(model, x, lengths, layer, direction)
    h = steps.pop("h")
    kind = cell_kind(model.recurrent.cells[0])
    rows = {g: steps[g].mean(-1) for g in GATES[kind]}
    # ‖h_t − h_{t−1}‖ in processing order, from the zero initial state
    h_proc = h if direction == 0 else reverse_padded(h, lengths)
    dh = (h_proc - F.pad(h_proc, (0, 0, 1, 0))[:, :-1]).norm(dim=-1)  # (B, T)
    rows["dh"] = dh if direction == 0 else reverse_padded(dh.unsqueeze(-1), lengths).squeeze(-1)
    if model.spec.task == "language_modeling" and y is not None:
        loss = F.cross_entropy(pred.transpose(1, 2), y, ignore_index=IGNORE_INDEX, reduction="none")
        rows["loss"] = loss.masked_fill(y == IGNORE_INDEX, math.nan)
    return rows, pred


def build_datamodule(cfg: DictConfig, model: SequenceModel, data_root: str | None = None):
    """The run's data module, rebuilt from its config; DataUnavailable (with the fix) when it cannot be."""
    data_cfg = cfg.data.copy()
    if data_root:
        data_cfg.root = data_root
    name = model.spec.name
    try:
        dm = instantiate(data_cfg)
        dm.prepare_data()
        dm.setup("fit")
    except Exception as error:  # noqa: BLE001 - any failure to rebuild gets the same clear message
        raise DataUnavailable(f"the data of this run ({name}, data.root={data_cfg.get('root')}) is not "
                              f"available here: {str(error).splitlines()[0][:300]}. Pass --data-root DIR, or "
                              f"explain a sentence of your own with --sentence") from None
    if dm.spec.itos != model.spec.itos:
        raise DataUnavailable(f"the {name} data rebuilt here has another vocabulary than the run was trained "
                              f"with (another data.root or version?): its token ids would not mean the same")
    return dm


def example(dm, split: str, index: int) -> tuple[Tensor, Tensor]:
    """Row ``index`` of a split, counting rows through the loader's batches -> x (1, T), y (1, ...)."""
    seen = 0
    for batch in {"val": dm.val_dataloader, "test": dm.test_dataloader}[split]():
        x, y = batch["x"], batch["y"]
        if index < seen + x.shape[0]:
            b = index - seen
            n = int(batch["lengths"][b]) if "lengths" in batch else x.shape[1]
            return x[b: b + 1, :n], (y[b: b + 1, :n] if y.dim() > 1 else y[b: b + 1])
        seen += x.shape[0]
    raise ValueError(f"--example {index}: the {split} split has {seen} examples")


def top_tokens(model: SequenceModel, dm, gate: str, k: int = 10, split: str = "val", max_batches: int = 50,
               min_count: int = 5, layer: int = 0, direction: int = 0) -> dict:
    """Mean of a row (e.g. r) per token id over a split -> {"low": [...], "high": [...]} of k tokens each."""
    if model.spec.vocab_size is None:
        raise ValueError("top tokens need token inputs; this data set feeds float features")
    V = model.spec.vocab_size
    total, count = torch.zeros(V, dtype=torch.float64), torch.zeros(V, dtype=torch.float64)
    loader = {"val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        x, lengths = batch["x"], batch.get("lengths")
        rows, _ = activity(model, x, batch["y"], lengths, layer, direction)
        if gate not in rows:
            raise ValueError(f"--gate {gate!r}: this model has {sorted(rows)}")
        valid = torch.ones_like(x, dtype=torch.bool)
        if lengths is not None:
            valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        valid &= ~torch.isnan(rows[gate])
        total += torch.bincount(x[valid], rows[gate][valid].double(), minlength=V)
        count += torch.bincount(x[valid], minlength=V).double()
    seen = (count >= min_count).nonzero().flatten().tolist()
    if not seen:
        return {"gate": gate, "low": [], "high": []}
    mean = {i: float(total[i] / count[i]) for i in seen}
    ranked = sorted(seen, key=lambda i: (mean[i], i))
    item = lambda i: {"token": model.spec.itos[i], "mean": mean[i], "count": int(count[i])}
    return {"gate": gate, "split": split, "low": [item(i) for i in ranked[:k]],
            "high": [item(i) for i in ranked[::-1][:k]]}

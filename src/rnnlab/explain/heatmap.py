"""Gate activity of a trained model over real tokens: a heatmap PNG, a Rich terminal view, top-k tokens.

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

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.nn import functional as F

from rnnlab.data.base import IGNORE_INDEX
from rnnlab.data.vocab import UNK, Vocab, tokenize
from rnnlab.explain.trace import cell_kind
from rnnlab.model.recurrent import reverse_padded
from rnnlab.model.sequence_model import SequenceModel
from rnnlab.training.checkpoint import load_model

GATES = {"gru": ("r", "z"), "lstm": ("i", "f", "o"), "rnn": ()}
LABELS = {"r": "mean r_t (reset)", "z": "mean z_t (update)", "i": "mean i_t (input)",
          "f": "mean f_t (forget)", "o": "mean o_t (output)", "dh": "‖h_t − h_{t-1}‖",
          "loss": "next-token loss"}
TOPK_DEFAULT = {"gru": "r", "lstm": "f", "rnn": "dh"}  # the gate whose low values reset/forget
TRIGGER_LOW = {"r", "f", "z", "i", "o"}  # a gate "fires" a reset/forget when it is low; dh when it is high


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


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _scale(name: str, values: np.ndarray) -> tuple[float, float, str]:
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return (0.0, 1.0, "viridis") if name in LABELS and name not in ("dh", "loss") else (0.0, top, "magma")


TOKENS_PER_ROW = 20  # a longer example wraps: the PNG stays ~1,600 px wide whatever its length


def plot_heatmap(tokens: list[str], rows: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """One heatmap row per quantity (gates on a fixed [0, 1] scale), tokens along x; values annotated.

    A long example wraps into blocks of ``TOKENS_PER_ROW`` tokens, one under the other, every block on the
    same width per token, so labels stay legible (9 pt tokens, 8 pt values) and the width bounded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    T, n = len(tokens), len(rows)
    per_row = min(T, TOKENS_PER_ROW)
    blocks = [range(start, min(start + per_row, T)) for start in range(0, T, per_row)]
    long_tokens = max(map(len, tokens)) > 5  # wider than their cell: written upwards
    block_height = 0.5 * n + (1.0 if long_tokens else 0.5)
    fig = Figure(figsize=(3.0 + 0.55 * per_row, block_height * len(blocks) + (0.4 if title else 0.0)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    scales = {name: _scale(name, values) for name, values in rows.items()}  # one scale for all blocks
    for block, sub in zip(blocks, np.atleast_1d(fig.subfigures(len(blocks), 1))):
        axes = sub.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        for ax, (name, values) in zip(axes, rows.items()):
            lo, hi, cmap = scales[name]
            im = ax.imshow(values[None, block.start:block.stop], aspect="auto", cmap=cmap, vmin=lo, vmax=hi,
                           interpolation="nearest", extent=(block.start - 0.5, block.stop - 0.5, 0.5, -0.5))
            ax.set_xlim(block.start - 0.5, block.start + per_row - 0.5)  # a short last block keeps the scale
            ax.set_yticks([0], [LABELS.get(name, name)], fontsize=9)
            sub.colorbar(im, ax=ax, pad=0.01, fraction=0.02).ax.tick_params(labelsize=8)
            for t in block:
                if np.isfinite(values[t]):
                    shade = (values[t] - lo) / (hi - lo or 1.0)
                    ax.text(t, 0, f"{values[t]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if shade > 0.6 else "white")
        axes[-1].set_xticks(list(block), [tokens[t] for t in block], rotation=90 if long_tokens else 0, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def render_terminal(tokens: list[str], rows: dict[str, np.ndarray], console=None, title: str = "") -> None:
    """A heatmap in the terminal: the tokens across, one line of value cells per quantity, each cell's
    background coloured on the PNG's scale; wrapped into blocks that fit the console."""
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    if title:
        console.rule(title)
    label_w = max(len(LABELS.get(k, k)) for k in rows) + 2
    cells = [t if len(t) <= 10 else t[:9] + "…" for t in tokens]
    width = [max(4, len(c)) for c in cells]
    scales = {k: _scale(k, v) for k, v in rows.items()}
    start = 0
    while start < len(tokens):
        end, used = start, label_w
        while end < len(tokens) and (end == start or used + width[end] + 1 <= console.width):
            used, end = used + width[end] + 1, end + 1
        console.print(Text(" " * label_w + " ".join(f"{cells[t]:^{width[t]}}" for t in range(start, end)),
                           style="bold"))
        for name, values in rows.items():
            lo, hi, cmap_name = scales[name]
            cmap, line = _colormap(cmap_name), Text(f"{LABELS.get(name, name):<{label_w}}")
            for t in range(start, end):
                v = values[t]
                if not np.isfinite(v):
                    line.append(f"{'—':^{width[t]}}", style="dim")
                else:
                    r, g, b, _ = cmap((v - lo) / (hi - lo or 1.0))
                    fg = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                    line.append(f"{v:^{width[t]}.2f}", style=f"{fg} on #{int(r * 255):02x}{int(g * 255):02x}"
                                                              f"{int(b * 255):02x}")
                line.append(" ")
            console.print(line)
        start = end
        console.print()


def render_top(top: dict, console=None) -> None:
    """The two ends of the top-k ranking, the end that resets/forgets first."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    gate = top["gate"]
    first, second = ("low", "high") if gate in TRIGGER_LOW else ("high", "low")
    hint = {"r": "low r_t = a reset: h̃_t ignores h_{t-1}", "f": "low f_t = forgetting c_{t-1}",
            "z": "high z_t = holding the old state", "dh": "high = the state moves most"}.get(gate, "")
    for end in (first, second):
        console.print(f"[bold]{'lowest' if end == 'low' else 'highest'} {LABELS.get(gate, gate)}[/] over the "
                      f"{top.get('split')} split" + (f" ({hint})" if hint and end == first else ""))
        table = Table("token", "mean", "count")
        for row in top[end]:
            table.add_row(row["token"], f"{row['mean']:.3f}", str(row["count"]))
        console.print(table)


def log_to_wandb(png: Path, cfg: DictConfig, run_dir: str | Path, top: dict | None = None) -> None:
    """Log the figure (and the top tokens) to the active W&B run, or to a new offline-capable one."""
    import wandb

    from rnnlab.training.loggers import wandb_api_key_available, wandb_mode

    own = wandb.run is None
    if own:
        mode = wandb_mode() or ("online" if wandb_api_key_available() else "offline")
        project = (cfg.get("logger") or {}).get("project") or "rnnlab"
        wandb.init(project=project, dir=str(run_dir), job_type="explain", mode=mode,
                   name=f"explain-{Path(run_dir).name}", config={"run_dir": str(run_dir)})
    data = {"explain/gates": wandb.Image(str(png))}
    if top:
        data["explain/top_tokens"] = wandb.Table(columns=["end", "token", "mean", "count"], data=[
            [end, r["token"], r["mean"], r["count"]] for end in ("low", "high") for r in top[end]])
    wandb.log(data)
    if own:
        wandb.finish()

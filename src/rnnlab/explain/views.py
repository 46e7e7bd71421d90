"""Views of gate activity (:mod:`rnnlab.explain.heatmap` computes it): a heatmap PNG, a Rich terminal view,
the top-k tokens as tables, and the PNG logged to W&B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

LABELS = {"r": "mean r_t (reset)", "z": "mean z_t (update)", "i": "mean i_t (input)",
          "f": "mean f_t (forget)", "o": "mean o_t (output)", "dh": "‖h_t − h_{t-1}‖",
          "loss": "next-token loss"}
TRIGGER_LOW = {"r", "f", "z", "i", "o"}  # a gate "fires" a reset/forget when it is low; dh when it is high


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def input_rows(x: np.ndarray, max_features: int = 4) -> dict[str, np.ndarray]:
    """A float-feature example's input sequence (T, F) as heatmap rows: each feature x_t[f] when there are at
    most ``max_features`` (the adding problem's value and marker), else their mean per step (image rows)."""
    if x.shape[1] <= max_features:
        return {f"input x_t[{f}]": x[:, f] for f in range(x.shape[1])}
    return {f"input: mean of {x.shape[1]} features": x.mean(1)}


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _scale(name: str, values: np.ndarray) -> tuple[float, float, str]:
    finite = values[np.isfinite(values)]
    if name.startswith("input"):  # the input's own range, on a scale apart from the gates'
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return min(lo, 0.0), hi if hi > lo else lo + 1.0, "cividis"
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
    fig = Figure(figsize=(3.0 + 0.55 * per_row, block_height * len(blocks) + 0.4 * (title.count("\n") + 1 if title else 0)),
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

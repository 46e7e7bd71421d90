"""The one-screen summary printed at the end of a run.

A table of what ran and how well, then the run directory (and its W&B folder) on lines of their own,
never cut or wrapped by the terminal's width: that path is what a user copies.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _data_row(results: dict) -> str | None:
    """The data set and its task; before the data is set up only the configured ``data=`` option is known."""
    if results.get("data"):
        return f"{results['data']} ({results['task']})" if results.get("task") else results["data"]
    if results.get("data_option"):
        return f"{results['data_option']} (the data= option; the run stopped before its data was set up)"
    return None


def _wandb_line(run_dir: Path) -> str | None:
    """How to look at the run's W&B records, when it wrote some (README: `wandb sync` uploads offline ones)."""
    runs = sorted((run_dir / "wandb").glob("*run-*"))
    if not runs:
        return None
    offline = runs[-1].name.startswith("offline-run-")
    return f"W&B{' (offline)' if offline else ''}: wandb leet {run_dir / 'wandb'}"


def summary_table(results: dict, with_error: bool = True) -> Table:
    status = results["status"]
    colour = {"ok": "green", "diverged": "yellow"}.get(status, "red")
    table = Table(title=f"rnnlab run: [{colour}]{status}[/{colour}]", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    impl = f" ({results['impl']})" if results.get("impl") else ""
    params = f", {results['params']:,} parameters" if results.get("params") else ""
    table.add_row("model", Text(f"{results['model']}{impl}{params}"))
    if (data := _data_row(results)) is not None:
        table.add_row("data", Text(data))
    metrics = results["metrics"]
    loss, baseline = metrics.get("test/loss"), results.get("baseline_loss")
    if loss is not None:
        verdict = ""
        if baseline:
            better = loss < baseline
            verdict = (f"  vs baseline {baseline:.4g}: [{'green' if better else 'red'}]"
                       f"{'beats it' if better else 'does not beat it'}[/] ({loss / baseline:.2%} of it)")
        table.add_row("test loss", f"{loss:.4g}{verdict}")
    for key in ("test/acc", "test/ppl"):
        if metrics.get(key) is not None:
            table.add_row(key.removeprefix("test/"), f"{metrics[key]:.4g}")
    table.add_row("steps", f"{results['steps']} in {results['train_seconds'] or 0:.1f} s"
                  + (f", {results['tokens_per_second']:,.0f} tokens/s" if results.get("tokens_per_second") else ""))
    if results.get("error") and with_error:
        table.add_row("error", Text(str(results["error"]), style="red"))  # Text: brackets in it are not markup
    return table


def print_summary(results: dict, console: Console | None = None, with_error: bool = True) -> None:
    """The run's summary box, then its directory and W&B lines. ``with_error=False``: the caller prints the
    error; a run that failed before its model was built then prints nothing (the error line says it all)."""
    if not with_error and results["status"] == "failed" and results.get("params") is None:
        return
    console = console or Console()
    console.print(summary_table(results, with_error))
    run_dir = Path(results["output_dir"])
    # soft_wrap: printed whole whatever the width (the terminal wraps it for display, a copy stays one line)
    holds = [name for name in ("results.json", "config.yaml", "run.log") if (run_dir / name).exists()]
    holds += ["figures"] if any(run_dir.glob("*.png")) else []
    lines = [f"run directory: {run_dir}" + (f"   ({', '.join(holds)})" if holds else "")]
    if (wandb := _wandb_line(run_dir)) is not None:
        lines.append(wandb)
    for line in lines:
        console.print(Text(line), soft_wrap=True)

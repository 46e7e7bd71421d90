"""The one-screen summary printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(results: dict, console: Console | None = None) -> None:
    console = console or Console()
    status = results["status"]
    colour = {"ok": "green", "diverged": "yellow"}.get(status, "red")
    table = Table(title=f"rnnlab run: [{colour}]{status}[/{colour}]", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", f"{results['model']} ({results['impl']}), {results['params'] or '?'} parameters")
    table.add_row("data", f"{results['data']} ({results['task']})")
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
    if results.get("error"):
        table.add_row("error", f"[red]{results['error']}[/red]")
    table.add_row("results", f"{results['output_dir']}/results.json")
    console.print(table)

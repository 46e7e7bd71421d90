"""``--wandb``: the aggregate table, the verdicts and the figures as one W&B run in the sweep's group.

The report run goes where the sweep's runs are grouped (W&B group = the sweep directory's name, as
:func:`rnnlab.training.train.run_context` sets it) and in their project; without an API key it is
written offline under ``<out dir>/wandb`` (``wandb sync`` uploads it, ``wandb leet`` browses it).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.report.aggregate import Group
from rnnlab.report.runs import Run, dig
from rnnlab.training.loggers import wandb_api_key_available, wandb_mode


def aggregate_rows(by_data: dict[str, list[Group]]) -> tuple[list[str], list[list]]:
    """(columns, rows) of every group: data set, its labels, counts, then mean and std of every quantity."""
    groups = [g for groups in by_data.values() for g in groups]
    label_keys = sorted({k for g in groups for k in g.labels}, key=lambda k: (k != "model.name", k))
    names = sorted({k for g in groups for k in g.stats})
    columns = ["data", "task", *label_keys, "runs", "ok", "diverged", "failed"]
    columns += [f"{name} {what}" for name in names for what in ("mean", "std")]
    rows = []
    for g in groups:
        row = [g.data, g.task, *(None if g.labels.get(k) is None else str(g.labels[k]) for k in label_keys),
               len(g.runs), g.counts["ok"], g.counts["diverged"], g.counts["failed"]]
        for name in names:
            s = g.stats.get(name)
            row += [s.mean, s.std] if s else [None, None]
        rows.append(row)
    return columns, rows


def _project(runs: list[Run]) -> str:
    projects = [dig(r.config or {}, "logger.project") for r in runs]
    return next((p for p in projects if isinstance(p, str)), "rnnlab")


def log_report(out_dir: Path, group: str, runs: list[Run], by_data: dict[str, list[Group]],
               verdicts: list[dict], figures: list[Path]) -> Path:
    """Log the report as a W&B run (job_type ``report``); returns that run's directory."""
    import wandb

    mode = wandb_mode() or ("online" if wandb_api_key_available() else "offline")
    run = wandb.init(project=_project(runs), group=group, name=f"report-{group}", job_type="report",
                     dir=str(out_dir), mode=mode, reinit="finish_previous",
                     config={"runs": len(runs), "data_sets": sorted(by_data)})
    columns, rows = aggregate_rows(by_data)
    verdict_rows = [[v["id"], v["kind"], v["verdict"], v["text"]] for v in verdicts]
    run.log({"report/aggregate": wandb.Table(columns=columns, data=rows),
             "report/verdicts": wandb.Table(columns=["id", "kind", "verdict", "text"], data=verdict_rows),
             **{f"report/{p.stem}": wandb.Image(str(p), caption=p.stem) for p in figures}})
    run.summary.update({f"verdict/{v['id']}": v["verdict"] for v in verdicts})
    run_dir = Path(run.dir).parent  # <out>/wandb/<offline-run-…>/files -> the run folder
    run.finish()
    return run_dir

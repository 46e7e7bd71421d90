"""Run directories read back: ``results.json``, the resolved ``config.yaml``, ``val_curve.csv``.

A run directory is what one training run wrote (docs/results.md); a sweep is a directory of them.
Nothing here trains or guesses: a file that cannot be read becomes one line in ``problems`` naming the
file, what is wrong and the fix, and the other runs are still reported.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

MISSING = object()  # a dotted path that leads nowhere (None is a value: "not measured")
# How a run executes, not what it computes: two runs that differ only here are seeds of one configuration.
RUN_ONLY_KEYS = frozenset({"output_dir", "threads", "progress_bar", "skip_completed", "logger", "resume",
                           "checkpoint_every_n_steps", "diagnostics", "claims", "claims_min_runs",
                           "literature"})


def dig(tree, dotted: str):
    """``tree["a"]["b/c"]`` for ``"a.b/c"`` (metric names hold '/', never '.'), or MISSING."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"data.seq_len": 50, ...}: every leaf of a nested mapping under its dotted path."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


@dataclass
class Run:
    """One run directory: its results.json, and its resolved config.yaml when it has one."""

    path: Path
    results: dict
    config: dict | None = None
    problems: list[str] = field(default_factory=list)
    data_name: str | None = None  # for a run that failed before its data was set up: from its data class

    @property
    def status(self) -> str:
        return self.results.get("status") or "failed"

    @property
    def model(self) -> str:
        return str(self.results.get("model") or dig(self.config or {}, "model.name"))

    def value(self, dotted: str):
        """``dotted`` looked up in results.json first (None there: not recorded), then in config.yaml;
        MISSING if in neither. ``data`` is the data set's name even for a run that failed before set-up."""
        found = dig(self.results, dotted)
        if dotted == "data" and found is None:
            return self.data_name or MISSING
        return found if found not in (MISSING, None) else dig(self.config or {}, dotted)

    def number(self, dotted: str) -> float | None:
        """A finite number at ``dotted``, else None."""
        value = self.value(dotted)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            return None
        return float(value)

    def configuration(self) -> dict[str, object]:
        """The resolved config minus seed and run-only keys: equal for the seeds of one configuration."""
        if self.config is None:  # a run that died before writing its config: what results.json says
            return {k: self.results.get(k) for k in ("model", "impl", "data", "params")}
        flat = flatten({k: v for k, v in self.config.items() if k not in RUN_ONLY_KEYS})
        return {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] != "seed"}

    def group_key(self) -> tuple:
        return tuple(sorted((k, json.dumps(v, sort_keys=True, default=str)) for k, v in self.configuration().items()))

    def val_curve(self) -> dict[str, np.ndarray] | None:
        """``val_curve.csv`` as columns (step, seconds, val/...), or None when the run has none."""
        path = self.path / "val_curve.csv"
        if not path.exists():
            return None
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"step", "seconds"} <= set(rows[0]):
            self.problems.append(f"{path}: expected a header 'step,seconds,<metric>,...' and rows; ignoring "
                                 "the file (it is rewritten by the next run of this config)")
            return None
        return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def _read_config(path: Path, problems: list[str]) -> dict | None:
    if not path.exists():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        problems.append(f"{path}: unreadable YAML ({str(error).splitlines()[0]}); grouping this run by "
                        "results.json alone")
        return None
    return config if isinstance(config, dict) else None


def load_run(results_path: Path, problems: list[str]) -> Run | None:
    """The run whose ``results.json`` is at ``results_path``, or None (with a line in ``problems``)."""
    try:
        results = json.loads(results_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{results_path}: unreadable results.json ({error}); skipping this run: rerun it, "
                        "or delete its directory")
        return None
    if not isinstance(results, dict):
        problems.append(f"{results_path}: results.json holds a {type(results).__name__}, not an object; "
                        "skipping this run: rerun it")
        return None
    return Run(results_path.parent, results, _read_config(results_path.parent / "config.yaml", problems))


def load_runs(dirs: list[str | Path]) -> tuple[list[Run], list[str]]:
    """Every run below the given directories (each run once), and a line per problem met."""
    runs, problems, seen = [], [], set()
    for root in map(Path, dirs):
        if not root.is_dir():
            problems.append(f"{root}: not a directory; give a sweep (multirun) or run directory")
            continue
        paths = sorted(p for p in root.rglob("results.json") if p.parent.resolve() not in seen)
        if not paths and not any(root.rglob("results.json")):
            problems.append(f"{root}: no results.json below it; nothing to report there (did its runs start?)")
        for path in paths:
            seen.add(path.parent.resolve())
            run = load_run(path, problems)
            if run is not None:
                runs.append(run)
    names = {r.value("data._target_"): r.results["data"] for r in runs if r.results.get("data")}
    for run in runs:
        run.data_name = run.results.get("data") or names.get(run.value("data._target_"))
    return runs, problems

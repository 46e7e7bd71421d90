"""One GRU at Chung et al. 2014's size on the real JSB Chorales file, trained with their recipe to early stopping.

Writes into this folder (the file itself is never copied here):
- ``sizes.json``: hidden sizes and parameter counts on 88 keys, Chung's units and ``model.param_budget=20000``;
- ``results.json``, ``config.yaml``, ``val_curve.csv``: the run's own files;
- ``RUN.md``: the command, commit, machine, wall time, and the test NLL beside Chung's 8.54; with
  ``--same-as <the other layout's file>``, whether both files give identical tensors, split by split.

    python benchmarks/jsb_gru_chung/run.py --file <JSB Chorales.pickle | jsb-chorales-quarter.pkl | JSB_Chorales.mat>
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))
CHUNG_GRU_TEST_NLL = 8.54  # Chung et al. 2014, Table 2, JSB Chorales, GRU test (arXiv:1412.3555)
MAX_TIME = "00:00:20:00"  # a wall-time cap (Lightning's trainer.max_time), in case early stopping is late


def sizes() -> dict:
    """{cell: {chung_units, chung_params, budget_20000_units, budget_20000_params}} on 88 keys in and out."""
    from hydra import compose, initialize_config_dir

    from rnnlab.data.base import DataSpec
    from rnnlab.model.param_budget import count_parameters, hidden_size_for_budget

    spec = DataSpec(name="polyphonic", task="multilabel", readout="all", output_size=88, input_size=88)
    table = {}
    for cell in ("rnn", "gru", "lstm"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"model={cell}", "+recipe=chung2014"])
        units = int(cfg.model.hidden_size)
        budget_units, budget_params = hidden_size_for_budget(cfg.model, spec, 20000)
        table[cell] = {"chung_units": units, "chung_params": count_parameters(cfg.model, spec, units),
                       "budget_20000_units": budget_units, "budget_20000_params": budget_params}
    return table


def same_rolls(a: str, b: str) -> str:
    """One line: whether two files (e.g. the pickle and the .mat) hold identical piano rolls, split by split."""
    from rnnlab.data.polyphonic import PolyphonicDataModule

    first, second = PolyphonicDataModule(a), PolyphonicDataModule(b)
    first.setup("fit")
    second.setup("fit")
    same = all(len(first.splits[s].rolls) == len(second.splits[s].rolls)
               and all(torch.equal(x, y) for x, y in zip(first.splits[s].rolls, second.splits[s].rolls))
               for s in ("train", "val", "test"))
    return (f"`{b}` ({second.stats['layout']}) gives {'identical' if same else 'DIFFERENT'} tensors "
            f"(torch.equal on every piece of every split; pieces {second.stats['pieces']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", required=True, help="the JSB Chorales file, pickle or .mat")
    parser.add_argument("--same-as", help="the same set in the other layout: checked to give identical tensors")
    args = parser.parse_args()
    same = same_rolls(args.file, args.same_as) if args.same_as else "not checked (no --same-as)"
    (HERE / "sizes.json").write_text(json.dumps(sizes(), indent=2) + "\n")
    overrides = ["+recipe=chung2014", "data=polyphonic", f"data.root={args.file}", "model=gru", "seed=0",
                 "logger=csv", "progress_bar=false", f"+trainer.max_time={MAX_TIME}"]
    command = f"python run.py {' '.join(overrides)}"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnlab-jsb-") as out:
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides, f"output_dir={out}"], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if not (Path(out) / "results.json").exists():
            raise RuntimeError(f"the run wrote no results.json:\n{done.stderr[-3000:]}")
        for name in ("results.json", "config.yaml", "val_curve.csv"):
            shutil.copy(Path(out) / name, HERE / name)
    r = json.loads((HERE / "results.json").read_text())
    config = yaml.safe_load((HERE / "config.yaml").read_text())
    stop = r.get("early_stopping") or {}
    (HERE / "RUN.md").write_text(f"""# JSB Chorales, GRU at Chung et al.'s size, their recipe (written by run.py)

```bash
python benchmarks/jsb_gru_chung/run.py --file {args.file}{' --same-as ' + args.same_as if args.same_as else ''}
# which ran, with output_dir=<a temporary directory>:
{command}
```

- git commit: `{commit}`
- file: `{r['data_stats']['file']}` ({r['data_stats']['layout']}, sha256 `{r['data_stats']['sha256']}`);
  pieces {r['data_stats']['pieces']}, frames {r['data_stats']['frames']}
- the other layout: {same}
- machine: {platform.machine()}, threads={config['threads']} (the run's), {platform.platform()}, \
Python {platform.python_version()}, torch {torch.__version__}
- finished: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; status `{r['status']}` {r['error'] or ''}

| | ours | Chung et al. 2014 |
|---|---:|---:|
| test NLL per frame | {r['metrics']['test/loss']:.3f} | {CHUNG_GRU_TEST_NLL} |
| validation NLL (best) | {r['metrics']['val/loss']:.3f} | |
| parameters | {r['params']:,} | ≈20K |
| updates | {r['steps']:,} ({r['epochs']:g} epochs) | |
| best validation at update | {stop.get('best_step')} | |
| stopped by | {stop['reason'] if isinstance(stop.get('reason'), str) else EarlyStoppingReason(stop['reason']).name.lower() if stop.get('reason') else 'the epoch cap or max_time'} | |
| training time | {r['train_seconds']:.0f} s | |
| wall time (the whole command) | {wall:.0f} s | |
""")
    print((HERE / "RUN.md").read_text())


if __name__ == "__main__":
    main()

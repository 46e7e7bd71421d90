"""Fair defaults, decided off the home corpus: every candidate default against word_language_model itself.

Two corpora of different sizes and levels (a fifth of KJV at word level; a slice of KJV at character level,
one character a token, the space written `_`), ≥ 3 seeds, several epochs with word_language_model's
annealing (lr ÷ 4 after an epoch without a new best validation loss: ours ``lr_anneal=0.25``), both cells,
the peer (pytorch/examples word_language_model, run from its own checkout, nothing copied) on the same
setting and seeds, and our cells under the reference's own values and each alternative, one change at a
time. Then the LSTM's forget bias on the adding problem (T = 100). Runs one process at a time, skips the
runs already finished (same command resumes: in its --work folder, or in the committed fair_defaults.json
when its setting is this one, so another session adds only the missing runs) and rewrites
benchmarks/fair_defaults.{json,md} as results arrive:

    python benchmarks/fair_defaults.py --peer /tmp/peer/word_language_model --peer-commit <sha>

The rule (README "Fair defaults", applied in fair_defaults_table.py): a value is kept as a default only if
on every corpus neither cell ends worse than the peer beyond seed noise (mean valid ppl above the peer's by
more than twice the standard error of the difference) and the LSTM/GRU ratio stays the peer's within the
same noise; where the current default fails, the reference's value becomes the default.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fair_defaults_table import write_tables
from wlm_compare import ENV, PEER_MALLOC, QUIET, ROOT, export_corpus

# word_language_model's setting; epochs and seed come per run
SETTING = ["model.hidden_size=200", "model.num_layers=2", "embeddings.dim=200", "model.dropout=0.2",
           "optimizer=sgd", "optimizer.lr=20", "trainer.gradient_clip_val=0.25", "data.bptt=35",
           "data.batch_size=20", "data.eval_batch_size=10", "lr_anneal=0.25", "model.impl=fused",
           "trainer.val_check_interval=1000000", "checkpoint_every_n_steps=0", "diagnostics.every_n_steps=0"]
# word_language_model's own values (recurrent init is torch's in both): the reference every change starts from
REFERENCE = {"model.embedding_init": "uniform", "model.head_init": "uniform", "model.dropout_placement": "all",
             "model.cell.forget_bias": "0.0"}
ALTERNATIVES = {"model.embedding_init": "normal", "model.head_init": "torch",
                "model.dropout_placement": "between_layers", "model.cell.forget_bias": "1.0"}
# the most telling runs first, so an interrupted budget still leaves ≥ 3 seeds of them
TIERS = [["peer", "reference"], ["model.embedding_init", "model.cell.forget_bias"],
         ["model.head_init", "model.dropout_placement"]]
ADDING = ["data=adding", "data.seq_len=100", "model=lstm", "model.hidden_size=64", "optimizer=rmsprop",
          "optimizer.lr=1e-3", "trainer.gradient_clip_val=1", "data.batch_size=64", "trainer.max_steps=3000",
          "trainer.val_check_interval=100", "early_stopping.threshold_fraction_of_baseline=0.05",
          "model.impl=fused", "checkpoint_every_n_steps=0", "diagnostics.every_n_steps=0"]


def export_chars(out: Path, every: int) -> dict:
    """Every ``every``-th verse of each KJV split at character level (``data=kjv data.level=char``'s
    tokens, lower-cased), one character a token, the space written ``_``, in the PTB file format."""
    from rnnlab.data.kjv import KJVDataModule

    data = KJVDataModule(level="char")
    data.check_root()
    tokens_of = data.tokens_of()
    splits = {s: [["_" if c == " " else c for c in tokens_of(v)] for v in list(data.lines(s))[::every]]
              for s in ("train", "val", "test")}
    seen = Counter(c for line in splits["train"] for c in line)
    out.mkdir(parents=True, exist_ok=True)
    for split, peer_name in (("train", "train"), ("val", "valid"), ("test", "test")):
        text = "".join(" " + " ".join(c if c in seen else "<unk>" for c in line) + " \n" for line in splits[split])
        (out / f"ptb.{peer_name}.txt").write_text(text)
        (out / f"{peer_name}.txt").write_text(text)
    return {"verses_every": every, "vocab": len(seen) + 1,
            "tokens": {s: sum(len(x) + 1 for x in lines) for s, lines in splits.items()}}


def ours(corpus: Path, out: Path, cell: str, seed: int, epochs: int, extra: list[str]) -> dict:
    if not (out / "results.json").is_file():
        cmd = [sys.executable, str(ROOT / "run.py"), "data=ptb", f"data.root={corpus}", f"model={cell}", *SETTING,
               f"trainer.max_epochs={epochs}", f"seed={seed}", *QUIET, *extra, f"output_dir={out}"]
        subprocess.run(cmd, cwd=ROOT, env={**ENV, "PYTHONPATH": str(ROOT / "src")}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = json.loads((out / "results.json").read_text())
    return {"valid_ppl": r["metrics"]["val/ppl"], "test_ppl": r["metrics"]["test/ppl"],
            "tokens_per_second": r["loop_tokens_per_second"], "wall_seconds": r["wall_seconds"],
            "fairness": r["fairness"]}


def peer(peer_dir: Path, corpus: Path, out: Path, cell: str, seed: int, epochs: int) -> dict:
    """The peer's main.py at its defaults, ``--epochs`` and ``--seed`` given, under the glibc thresholds our
    runs set (like for like in tokens/s; perplexity does not depend on them); tokens/s from its ms/batch lines."""
    log_file = out / "log.txt"
    if not log_file.is_file() or "End of training" not in log_file.read_text():
        out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        cmd = [sys.executable, "main.py", "--data", str(corpus), "--model", cell.upper(), "--epochs", str(epochs),
               "--seed", str(seed), "--log-interval", "20", "--save", str(out / "model.pt")]
        log = subprocess.run(cmd, cwd=peer_dir, env={**ENV, **PEER_MALLOC}, check=True, capture_output=True,
                             text=True).stdout
        log_file.write_text(log + f"\nwall_seconds {time.time() - started:.1f}\n")
        (out / "model.pt").unlink(missing_ok=True)
    log = log_file.read_text()
    batches, seconds = 0, 0.0
    for epoch_log in re.split(r"end of epoch", log):  # the batch counter restarts every epoch
        last = 0
        for done, ms in re.findall(r"\|\s*(\d+)/\s*\d+ batches \|.*?ms/batch\s+([\d.]+)", epoch_log):
            batches, seconds, last = batches + int(done) - last, seconds + (int(done) - last) * float(ms) / 1000, int(done)
    valid = [float(v) for v in re.findall(r"end of epoch.*valid ppl\s+([\d.]+)", log)]
    return {"valid_ppl": valid[-1], "valid_ppl_per_epoch": valid, "tokens_per_second": batches * 35 * 20 / seconds,
            "test_ppl": float(re.search(r"End of training.*test ppl\s+([\d.]+)", log).group(1)),
            "wall_seconds": float(re.search(r"wall_seconds ([\d.]+)", log).group(1))}


def adding(out: Path, seed: int, forget_bias: str) -> dict:
    if not (out / "results.json").is_file():
        cmd = [sys.executable, str(ROOT / "run.py"), *ADDING, f"model.cell.forget_bias={forget_bias}",
               f"seed={seed}", *QUIET, f"output_dir={out}"]
        subprocess.run(cmd, cwd=ROOT, env={**ENV, "PYTHONPATH": str(ROOT / "src")}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = json.loads((out / "results.json").read_text())
    return {"solved": r["early_stopping"]["stopped"], "steps": r["steps"], "test_mse": r["metrics"]["test/loss"],
            "baseline_mse": r["baseline_loss"], "wall_seconds": r["wall_seconds"]}


def variant_overrides(variant: str) -> dict[str, str]:
    """The reference's values with one key changed ("reference": none changed)."""
    return {**REFERENCE, **({variant: ALTERNATIVES[variant]} if variant in ALTERNATIVES else {})}


def plan(tier: list[str], corpora: dict, seeds: list[int]) -> list[tuple]:
    runs = []
    for corpus in sorted(corpora, key=lambda name: name != "kjv_char"):  # the cheap corpus first
        for seed in seeds:
            for variant in tier:
                cells = ["lstm"] if variant == "model.cell.forget_bias" else ["lstm", "gru"]
                runs += [(corpus, variant, cell, seed) for cell in cells]
    return runs


def committed_runs(result: dict) -> dict:
    """benchmarks/fair_defaults.json when it was made with this very setting (peer, seeds, epochs, corpora,
    our setting and values), else {}: its runs count as done."""
    path = ROOT / "benchmarks" / "fair_defaults.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    same = ("peer_commit", "seeds", "epochs", "corpora", "setting", "reference", "alternatives", "adding_setting")
    return earlier if all(earlier.get(k) == result[k] for k in same) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", type=Path, required=True, help="word_language_model's folder (its main.py)")
    parser.add_argument("--peer-commit", default="unknown", help="the pytorch/examples commit checked out there")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--char-every", type=int, default=40, help="the character corpus: every N-th verse")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fair_defaults"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    info = {"kjv_word": export_corpus(args.work / "kjv_word", 5, 5000),
            "kjv_char": export_chars(args.work / "kjv_char", args.char_every)}
    result = {"peer_commit": args.peer_commit, "seeds": args.seeds, "epochs": args.epochs, "corpora": info,
              "setting": SETTING, "reference": REFERENCE, "alternatives": ALTERNATIVES, "adding_setting": ADDING,
              "load": [round(os.getloadavg()[0], 2)], "runs": [], "adding": []}
    earlier = committed_runs(result)
    result["sessions"] = [*earlier.get("sessions", [{"seconds": earlier["seconds"], "load": earlier["load"]}]
                                       if earlier else []), {"load": result["load"]}]
    started = time.time()

    def save() -> None:
        this = result["sessions"][-1]
        this.update(seconds=round(time.time() - started), load=[*this["load"][:1], round(os.getloadavg()[0], 2)])
        result.update(seconds=sum(s["seconds"] for s in result["sessions"]), load=result["sessions"][0]["load"])
        write_tables(result, ROOT / "benchmarks" / "fair_defaults")

    for tier_number, tier in enumerate(TIERS):
        if tier_number == 2:  # the forget bias on the adding problem before the least telling LM runs
            for seed in args.seeds:
                for bias in ("0.0", "1.0"):
                    if done := [a for a in earlier.get("adding", []) if (a["forget_bias"], a["seed"]) == (float(bias), seed)]:
                        result["adding"].append(done[0])
                        continue
                    r = adding(args.work / "adding" / f"fb{bias}_{seed}", seed, bias)
                    result["adding"].append({"forget_bias": float(bias), "seed": seed, **r})
                    print("adding", bias, seed, r, flush=True)
                    save()
        for corpus, variant, cell, seed in plan(tier, info, args.seeds):
            key = {"corpus": corpus, "variant": variant, "cell": cell, "seed": seed}
            if done := [r for r in earlier.get("runs", []) if {k: r[k] for k in key} == key]:
                result["runs"].append(done[0])
                continue
            out = args.work / f"e{args.epochs}" / corpus / f"{variant}_{cell}_{seed}"
            root = args.work / corpus
            if variant == "peer":
                r = peer(args.peer.resolve(), root, out, cell, seed, args.epochs)
            else:
                over = {k: v for k, v in variant_overrides(variant).items() if cell == "lstm" or "forget" not in k}
                r = ours(root, out, cell, seed, args.epochs, [f"{k}={v}" for k, v in over.items()])
            result["runs"].append({"corpus": corpus, "variant": variant, "cell": cell, "seed": seed, **r})
            print(corpus, variant, cell, seed, round(r["valid_ppl"], 2), f"{r['wall_seconds']:.0f}s", flush=True)
            save()

if __name__ == "__main__":
    main()

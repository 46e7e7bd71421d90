"""rnnlab beside pytorch/examples word_language_model, on its classic setting and the same text.

Exports the KJV word-level corpus (``data=kjv``) in the PTB file format (one verse a line; ``ptb.*.txt`` for
us, ``train/valid/test.txt`` for the peer), then trains both tools on it with the peer's defaults (2 × 200
units, embeddings 200, bptt 35, batch 20, dropout 0.2, plain SGD lr 20, clip 0.25, 1 epoch, seed 1111),
one thread each, runs alternated (A B A B). Words outside the exported vocabulary are written as ``<unk>``,
and the vocabulary is built from the exported training text, so no valid/test word is unknown to it: both
tools then have the very same vocabulary, and their perplexities compare directly.

    python benchmarks/wlm_compare.py --peer /tmp/peer/word_language_model --peer-commit <sha>
    python benchmarks/wlm_compare.py --ablation          # our defaults, one change at a time

The peer's code is run from its own checkout (``--peer``); nothing of it is copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTING = ["model.hidden_size=200", "model.num_layers=2", "embeddings.dim=200", "model.dropout=0.2",
           "optimizer=sgd", "optimizer.lr=20", "trainer.gradient_clip_val=0.25", "trainer.max_epochs=1",
           "seed=1111", "data.bptt=35", "data.batch_size=20", "data.eval_batch_size=10"]
QUIET = ["threads=1", "logger=none", "progress_bar=false"]
# the ablation: the old defaults, each change alone, word_language_model's three together, the chosen defaults
E_N, E_U = "model.embedding_init=normal", "model.embedding_init=uniform"
H_T, H_U = "model.head_init=torch", "model.head_init=uniform"
D_B, D_A = "model.dropout_placement=between_layers", "model.dropout_placement=all"
ABLATION = {"old defaults (N(0,1) embeddings, torch head, dropout between layers)": [E_N, H_T, D_B],
            "+ embeddings U(-0.1, 0.1)": [E_U, H_T, D_B],
            "+ head U(-0.1, 0.1), bias 0": [E_N, H_U, D_B],
            "+ dropout on embeddings and output": [E_N, H_T, D_A],
            "all three (word_language_model's)": [E_U, H_U, D_A],
            "head U(-0.1, 0.1) + dropout all, N(0,1) embeddings": [E_N, H_U, D_A]}
ARMS = ("peer", "peer+malloc", "fused", "unrolled", "fused+diag50")  # "+diag50": gradient diagnostics every 50 steps
# "peer+malloc": the peer under the glibc thresholds our runs set (keep_freed_memory=true), from the environment
PEER_MALLOC = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"}
FORGET_BIAS_0, FORGET_BIAS_1 = "model.cell.forget_bias=0.0", "model.cell.forget_bias=1.0"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def export_corpus(out: Path, every: int, max_size: int) -> dict:
    """Every ``every``-th verse of each KJV split, tokenised as ``data=kjv`` does, words outside the training
    text's ``max_size`` most frequent written as ``<unk>``."""
    sys.path.insert(0, str(ROOT / "src"))
    from rnnlab.data.kjv import KJVDataModule

    data = KJVDataModule(level="word")
    data.check_root()
    tokens_of = data.tokens_of()
    splits = {s: [tokens_of(v) for v in list(data.lines(s))[::every]] for s in ("train", "val", "test")}
    counts = Counter(w for line in splits["train"] for w in line)
    keep = {w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:max_size - 1]}
    out.mkdir(parents=True, exist_ok=True)
    for split, peer_name in (("train", "train"), ("val", "valid"), ("test", "test")):
        text = "".join(" " + " ".join(w if w in keep else "<unk>" for w in line) + " \n" for line in splits[split])
        (out / f"ptb.{peer_name}.txt").write_text(text)
        (out / f"{peer_name}.txt").write_text(text)
    return {"verses_every": every, "max_size": max_size, "vocab": len(keep) + 1,
            "tokens": {s: sum(len(x) + 1 for x in lines) for s, lines in splits.items()}}


def run_ours(corpus: Path, out: Path, cell: str, impl: str, extra: list[str]) -> dict:
    cmd = [sys.executable, str(ROOT / "run.py"), "data=ptb", f"data.root={corpus}", f"model={cell}",
           f"model.impl={impl}", *SETTING, *QUIET, *extra, f"output_dir={out}"]
    subprocess.run(cmd, cwd=ROOT, env={**ENV, "PYTHONPATH": str(ROOT / "src")}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return read_ours(out)


def read_ours(out: Path) -> dict:
    r = json.loads((out / "results.json").read_text())
    return {"tokens_per_second": r.get("loop_tokens_per_second"), "step_tokens_per_second": r["tokens_per_second"],
            "valid_ppl": r["metrics"]["val/ppl"], "test_ppl": r["metrics"]["test/ppl"], "steps": r["steps"],
            "fairness": r.get("fairness")}


def run_peer(peer: Path, corpus: Path, out: Path, cell: str, env: dict | None = None) -> dict:
    """The peer's main.py with its defaults and 1 epoch; tokens/s from its ms/batch lines."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "main.py", "--data", str(corpus), "--model", cell.upper(), "--epochs", "1",
           "--log-interval", "20", "--save", str(out / "model.pt")]
    log = subprocess.run(cmd, cwd=peer, env={**ENV, **(env or {})}, check=True, capture_output=True, text=True).stdout
    (out / "log.txt").write_text(log)
    batches, seconds, last = 0, 0.0, 0
    for done, ms in re.findall(r"\|\s*(\d+)/\s*\d+ batches \|.*?ms/batch\s+([\d.]+)", log):
        n = int(done) - last
        batches, seconds, last = batches + n, seconds + n * float(ms) / 1000, int(done)
    valid = float(re.search(r"end of epoch.*valid ppl\s+([\d.]+)", log).group(1))
    test = float(re.search(r"End of training.*test ppl\s+([\d.]+)", log).group(1))
    return {"tokens_per_second": batches * 35 * 20 / seconds, "valid_ppl": valid, "test_ppl": test}


def ablation(corpus: Path, work: Path) -> dict:
    rows = []
    for cell in ("lstm", "gru"):
        variants = dict(ABLATION)
        if cell == "lstm":  # the LSTM rows above keep the old forget-gate bias, 1; the last row is the new default
            variants = {name: [*extra, FORGET_BIAS_1] for name, extra in variants.items()}
            variants["+ forget bias 0 (torch's): the new defaults"] = [E_N, H_U, D_A, FORGET_BIAS_0]
        for name, extra in variants.items():
            out = work / f"ablation_{cell}_{len(rows)}"
            if not (out / "results.json").is_file():  # a finished run of an interrupted ablation is kept
                run_ours(corpus, out, cell, "fused", [*extra, "diagnostics.every_n_steps=0"])
            r = read_ours(out)
            rows.append({"cell": cell, "variant": name, "overrides": extra, **r})
            print(cell, name, round(r["valid_ppl"], 2), round(r["test_ppl"], 2), flush=True)
    return {"rows": rows}


def compare(corpus: Path, work: Path, peer: Path, rounds: int) -> dict:
    arms = {f"{cell}/{who}": (cell, who) for cell in ("lstm", "gru")
            for who in ARMS}
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for round_ in range(rounds):  # A B A B: every arm once per round, in the same order
        for name, (cell, who) in arms.items():
            out = work / f"{name.replace('/', '_')}_{round_}"
            if who.startswith("peer"):
                runs[name].append(run_peer(peer, corpus, out, cell, PEER_MALLOC if who == "peer+malloc" else None))
            else:
                impl, _, diag = who.partition("+")
                runs[name].append(run_ours(corpus, out, cell, impl,
                                           [f"diagnostics.every_n_steps={50 if diag else 0}"]))
            print(name, round_, {k: v for k, v in runs[name][-1].items() if k != "fairness"}, flush=True)
    return {"runs": runs}


PEER_NAMES = {"peer": "word_language_model", "peer+malloc": "word_language_model, our malloc thresholds"}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def write_compare(result: dict, path: Path) -> None:
    runs, lines = result["runs"], []
    lines += [f"# rnnlab beside word_language_model ({result['peer_commit'][:12]})", "",
              (f"Corpus: {result['corpus']}. Setting: {' '.join(SETTING)}; one thread each "
              f"(OMP_NUM_THREADS=1), {result['rounds']} alternated round(s). Load before/after: "
              f"{result['load'][0]} / {result['load'][1]}. Medians over rounds; tokens/s is training tokens "
              "over the training loop's wall time without validation (ours: `loop_tokens_per_second`; "
              "the peer: its ms/batch lines)."), "",
              ("| cell | run | tokens/s | ours / peer | same round, min–max | ours / peer with our malloc "
              "thresholds, same round min–max | valid ppl | test ppl |"),
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for cell in ("lstm", "gru"):
        peer, peer_malloc = runs[f"{cell}/peer"], runs.get(f"{cell}/peer+malloc")
        for who in [a for a in ARMS if f"{cell}/{a}" in runs]:
            r = runs[f"{cell}/{who}"]
            ratio = median(r, "tokens_per_second") / median(peer, "tokens_per_second")
            paired = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(r, peer)]  # run beside run
            like = "–"  # the like-for-like figure: the peer under the same glibc thresholds as ours
            if peer_malloc and not who.startswith("peer"):
                same = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(r, peer_malloc)]
                like = f"{min(same):.3f}–{max(same):.3f}"
            lines.append(f"| {cell.upper()} | {PEER_NAMES.get(who, 'rnnlab ' + who)} | "
                         f"{median(r, 'tokens_per_second'):,.0f} | {ratio:.3f} | "
                         f"{min(paired):.3f}–{max(paired):.3f} | {like} | {median(r, 'valid_ppl'):.2f} | "
                         f"{median(r, 'test_ppl'):.2f} |")
    path.write_text("\n".join(lines) + "\n")


def write_ablation(result: dict, path: Path) -> None:
    lines = ["# Fair defaults: one change at a time (rnnlab, fused, word_language_model's setting)", "",
             (f"Corpus: {result['corpus']}. Setting: {' '.join(SETTING)}; one thread. Load before/after: "
             f"{result['load'][0]} / {result['load'][1]}."), "",
             "| cell | variant | valid ppl | test ppl |", "|---|---|---:|---:|"]
    lines += [f"| {r['cell'].upper()} | {r['variant']} | {r['valid_ppl']:.2f} | {r['test_ppl']:.2f} |"
              for r in result["rows"]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", type=Path, help="word_language_model's folder (its main.py)")
    parser.add_argument("--peer-commit", default="unknown", help="the pytorch/examples commit checked out there")
    parser.add_argument("--ablation", action="store_true", help="our defaults one change at a time instead")
    parser.add_argument("--every", type=int, default=5, help="export every N-th verse (1 = all)")
    parser.add_argument("--max-size", type=int, default=5000, help="vocabulary size, <unk> included")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wlm_compare"))
    parser.add_argument("--table-only", action="store_true", help="rewrite wlm_compare.md from its .json")
    args = parser.parse_args()
    if args.table_only:
        path = ROOT / "benchmarks" / "wlm_compare.md"
        return write_compare(json.loads(path.with_suffix(".json").read_text()), path)
    corpus = args.work / "corpus"
    info = export_corpus(corpus, args.every, args.max_size)
    what = (f"KJV word level, every {args.every}th verse of each split, vocabulary {info['vocab']} "
            f"(the exported training text's most frequent words, the rest `<unk>`), tokens {info['tokens']}")
    load = [os.getloadavg()[0]]
    started = time.time()
    if args.ablation:
        result = ablation(corpus, args.work)
    else:
        result = compare(corpus, args.work, args.peer.resolve(), args.rounds)
        result.update(peer_commit=args.peer_commit, rounds=args.rounds)
    load.append(os.getloadavg()[0])
    result.update(corpus=what, corpus_info=info, setting=SETTING, load=[round(x, 2) for x in load],
                  seconds=round(time.time() - started))
    name = "wlm_ablation" if args.ablation else "wlm_compare"
    (ROOT / "benchmarks" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (write_ablation if args.ablation else write_compare)(result, ROOT / "benchmarks" / f"{name}.md")


if __name__ == "__main__":
    main()

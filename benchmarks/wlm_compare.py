"""rnnlab beside pytorch/examples word_language_model, on its classic setting and the same text, two corpora.

Exports the KJV word-level corpus (``data=kjv``) in the PTB file format (one verse a line; ``ptb.*.txt`` for
us, ``train/valid/test.txt`` for the peer) twice: every 5th verse with a 5,000-word vocabulary (``fifth``, the
corpus of the earlier tables) and every verse with every training word (``full``: 5x the tokens, 2.4x the
vocabulary). Both tools train on both with the peer's defaults (2 × 200 units, embeddings 200, bptt 35,
batch 20, dropout 0.2, plain SGD lr 20, clip 0.25, 1 epoch, seed 1111), one thread each, in rounds: each
round runs every arm of both corpora once, in the same order, so each of our runs has a peer run of its own
round to be divided by. Words outside the exported vocabulary are written as ``<unk>``, and the vocabulary is
built from the exported training text, so no valid/test word is unknown to it: both tools then have the very
same vocabulary, and their perplexities compare directly.

    python benchmarks/wlm_compare.py --peer /tmp/peer/word_language_model --peer-commit <sha>
    python benchmarks/wlm_compare.py --peer … --corpora full --rounds 1 --work /tmp/wlm_extra   # a part
    python benchmarks/wlm_compare.py --table-only        # rewrite the .md from the .json
    python benchmarks/wlm_compare.py --ablation          # our defaults, one change at a time

A finished run is kept in ``--work`` and reused, so the same command resumes an interrupted comparison; a
round with a run of ours older than the last commit to src/ runs again, whole. The
peer's code is run from its own checkout (``--peer``); nothing of it is copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
# "+diag50": gradient diagnostics every 50 steps; "peer+malloc": the peer under the glibc thresholds our runs
# set (keep_freed_memory=true), from the environment, for the like-for-like ratio
ARMS = ("peer", "peer+malloc", "fused", "unrolled", "fused+diag50")
PEER_MALLOC = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"}
# (every N-th verse, vocabulary size or None for every training word, the arms of each cell): the fifth is the
# committed corpus of earlier tables; on the whole Bible (5x the tokens, 2.4x the vocabulary) only the arms
# the targets name run (fused LSTM and GRU >= 1.0x, unrolled LSTM >= 0.9x the peer), and the like-for-like peer
CORPORA = {"fifth": (5, 5000, {"lstm": ARMS, "gru": ARMS}),
           "full": (1, None, {"lstm": ("peer", "peer+malloc", "fused", "unrolled"),
                              "gru": ("peer", "peer+malloc", "fused")})}
FORGET_BIAS_0, FORGET_BIAS_1 = "model.cell.forget_bias=0.0", "model.cell.forget_bias=1.0"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def export_corpus(out: Path, every: int, max_size: int | None, limit: int | None = None) -> dict:
    """Every ``every``-th verse of each KJV split (the first ``limit`` of those: a smoke run), tokenised as
    ``data=kjv`` does, words outside the training text's ``max_size`` most frequent (None: every training word
    kept) written as ``<unk>``."""
    sys.path.insert(0, str(ROOT / "src"))
    from rnnlab.data.kjv import KJVDataModule

    data = KJVDataModule(level="word")
    data.check_root()
    tokens_of = data.tokens_of()
    splits = {s: [tokens_of(v) for v in list(data.lines(s))[::every][:limit]] for s in ("train", "val", "test")}
    counts = Counter(w for line in splits["train"] for w in line)
    keep = {w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:(max_size or len(counts) + 1) - 1]}
    out.mkdir(parents=True, exist_ok=True)
    for split, peer_name in (("train", "train"), ("val", "valid"), ("test", "test")):
        text = "".join(" " + " ".join(w if w in keep else "<unk>" for w in line) + " \n" for line in splits[split])
        (out / f"ptb.{peer_name}.txt").write_text(text)
        (out / f"{peer_name}.txt").write_text(text)
    return {"verses_every": every, "max_size": max_size, "limit": limit, "vocab": len(keep) + 1,
            "tokens": {s: sum(len(x) + 1 for x in lines) for s, lines in splits.items()}}


def exported(out: Path, every: int, max_size: int | None, limit: int | None) -> dict:
    """The corpus under ``out``, exported once: a rerun finds it with its ``corpus.json``."""
    info_file = out / "corpus.json"
    if info_file.is_file() and [(info := json.loads(info_file.read_text())).get(k) for k in
                                ("verses_every", "max_size", "limit")] == [every, max_size, limit]:
        return info
    info = export_corpus(out, every, max_size, limit)
    info_file.write_text(json.dumps(info) + "\n")
    return info


def describe(info: dict) -> str:
    kept = (f"the exported training text's {info['max_size']:,} most frequent words, the rest `<unk>`"
            if info["max_size"] else "every word of the exported training text")
    every = "every verse" if info["verses_every"] == 1 else f"every {info['verses_every']}th verse"
    return (f"KJV word level, {every} of each split, vocabulary {info['vocab']:,} "
            f"({kept}), tokens {info['tokens']}")


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
    """The peer's main.py with its defaults and 1 epoch."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "main.py", "--data", str(corpus), "--model", cell.upper(), "--epochs", "1",
           "--log-interval", "20", "--save", str(out / "model.pt")]
    log = subprocess.run(cmd, cwd=peer, env={**ENV, **(env or {})}, check=True, capture_output=True, text=True).stdout
    (out / "log.txt").write_text(log)
    return read_peer(out)


def read_peer(out: Path) -> dict:
    """tokens/s from the peer's ms/batch lines (its training loop without validation), its valid and test ppl."""
    log = (out / "log.txt").read_text()
    batches, seconds, last = 0, 0.0, 0
    for done, ms in re.findall(r"\|\s*(\d+)/\s*\d+ batches \|.*?ms/batch\s+([\d.]+)", log):
        n = int(done) - last
        batches, seconds, last = batches + n, seconds + n * float(ms) / 1000, int(done)
    if not batches:
        raise ValueError(f"{out / 'log.txt'}: no ms/batch line; the peer logs every 20 batches, so a corpus needs 21")
    valid = float(re.search(r"end of epoch.*valid ppl\s+([\d.]+)", log).group(1))
    test = float(re.search(r"End of training.*test ppl\s+([\d.]+)", log).group(1))
    return {"tokens_per_second": batches * 35 * 20 / seconds, "valid_ppl": valid, "test_ppl": test}


def run_arm(peer: Path, corpus: Path, out: Path, cell: str, who: str) -> dict:
    """One run of an arm, or the finished one found in ``out`` (``run.json``: a rerun resumes)."""
    done = out / "run.json"
    if done.is_file():
        timing = json.loads(done.read_text())
        return {**(read_peer(out) if who.startswith("peer") else read_ours(out)), **timing}
    load, started = os.getloadavg()[0], time.time()
    if who.startswith("peer"):
        result = run_peer(peer, corpus, out, cell, PEER_MALLOC if who == "peer+malloc" else None)
    else:
        impl, _, diag = who.partition("+")
        result = run_ours(corpus, out, cell, impl, [f"diagnostics.every_n_steps={50 if diag else 0}"])
    timing = {"load_before": round(load, 2), "seconds": round(time.time() - started, 1)}
    done.write_text(json.dumps(timing) + "\n")
    return {**result, **timing}


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


def last_source_change() -> float:
    """When the code our runs execute last changed: the newest commit touching src/ (seconds since the epoch)."""
    out = subprocess.run(["git", "log", "-1", "--format=%ct", "--", "src"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    return float(out or 0)


def stale_round(dirs: list[Path], changed: float) -> list[Path]:
    """Our finished runs of one round made before the code last changed (run.json older than that commit):
    reused, they would time older code. The whole round is then run again, the peer's runs too, so that
    every ratio stays a run over the peer's run of the same round."""
    return [d for d in dirs if not d.name.split("_")[1].startswith("peer") and (d / "run.json").is_file()
            and (d / "run.json").stat().st_mtime < changed]


def compare(work: Path, peer: Path, rounds: int, corpora: dict) -> dict:
    """Every arm of every corpus once per round, in the same order, both corpora in each round."""
    result = {name: {"info": info, "runs": {f"{cell}/{who}": [] for cell, arms in CORPORA[name][2].items()
                                            for who in arms}} for name, (info, _) in corpora.items()}
    changed = last_source_change()
    for round_ in range(rounds):
        for name, (info, corpus) in corpora.items():
            outs = {arm: work / name / f"{arm.replace('/', '_')}_{round_}" for arm in result[name]["runs"]}
            if stale := stale_round(list(outs.values()), changed):
                print(f"{name} round {round_}: {', '.join(d.name for d in stale)} predate the last change to "
                      f"src/; the round runs again", flush=True)
                for out in outs.values():
                    shutil.rmtree(out, ignore_errors=True)
            for arm, runs in result[name]["runs"].items():
                cell, who = arm.split("/")
                runs.append(run_arm(peer, corpus, outs[arm], cell, who))
                print(name, arm, round_, {k: v for k, v in runs[-1].items() if k != "fairness"}, flush=True)
    return result


PEER_NAMES = {"peer": "word_language_model", "peer+malloc": "word_language_model, our malloc thresholds"}
TARGETS = (("lstm", "fused", 1.0), ("gru", "fused", 1.0), ("lstm", "unrolled", 0.9))  # ours / the plain peer


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def same_round(runs: list[dict], peer: list[dict]) -> list[float]:
    """Each round's run over the peer's run of that round: the machine's state is shared within a round."""
    return [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(runs, peer)]


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})" if ratios else "–"


def target_lines(result: dict) -> list[str]:
    lines = ["| corpus | target | ours / peer, each round | median | rounds at or above |", "|---|---|---|---:|---|"]
    for name, corpus in result["corpora"].items():
        for cell, who, target in TARGETS:
            if f"{cell}/{who}" not in corpus["runs"]:
                continue
            ratios = same_round(corpus["runs"][f"{cell}/{who}"], corpus["runs"][f"{cell}/peer"])
            verdict = f"{sum(r >= target for r in ratios)} of {len(ratios)} rounds"
            lines.append(f"| {name} | {cell.upper()} {who} ≥ {target:.1f}× | {', '.join(f'{r:.3f}' for r in ratios)} "
                         f"| {statistics.median(ratios):.3f} | {verdict} |")
    return lines


def arm_lines(corpus: dict) -> list[str]:
    lines = [("| cell | run | tokens/s | ours / peer, same round: median (min–max) | ours / peer with our malloc "
              "thresholds, same round | valid ppl | test ppl | load before, median | minutes a run |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    runs = corpus["runs"]
    for arm, r in runs.items():
        cell, who = arm.split("/")
        peer_malloc = runs.get(f"{cell}/peer+malloc")
        like = spread(same_round(r, peer_malloc)) if peer_malloc and not who.startswith("peer") else "–"
        load = f"{median(r, 'load_before'):.2f}" if all("load_before" in x for x in r) else "–"
        minutes = f"{median(r, 'seconds') / 60:.1f}" if all("seconds" in x for x in r) else "–"
        lines.append(f"| {cell.upper()} | {PEER_NAMES.get(who, 'rnnlab ' + who)} | "
                     f"{median(r, 'tokens_per_second'):,.0f} | {spread(same_round(r, runs[f'{cell}/peer']))} | "
                     f"{like} | {median(r, 'valid_ppl'):.2f} | {median(r, 'test_ppl'):.2f} | {load} | {minutes} |")
    return lines


def write_compare(result: dict, path: Path) -> None:
    lines = [f"# rnnlab beside word_language_model ({result['peer_commit'][:12]})", "",
             (f"Setting: {' '.join(SETTING)}; one thread each (OMP_NUM_THREADS=1); {result['rounds']} round(s), "
              "each running every arm of both corpora once, in the same order. Load before/after: "
              f"{result['load'][0]} / {result['load'][1]}; wall time {result['seconds'] / 60:.1f} min. Tokens/s is "
              "training tokens over the training loop's wall time without validation (ours: "
              "`loop_tokens_per_second`; the peer: its ms/batch lines), the median over rounds; every ratio is a "
              "run over the peer's run of the same round (median and range of those, never a best-of)."), "",
             "Targets (ours over the plain peer, same round):", "", *target_lines(result)]
    for name, corpus in result["corpora"].items():
        minutes = sum(r.get("seconds", 0) for runs in corpus["runs"].values() for r in runs) / 60
        took = f"; {minutes:.1f} min of runs" if minutes else ""
        lines += ["", f"## {name}: {describe(corpus['info'])}{took}", "", *arm_lines(corpus)]
    path.write_text("\n".join(lines) + "\n")


def upgraded(result: dict) -> dict:
    """A table file of the one-corpus layout (before both corpora ran in one script) in today's layout."""
    if "corpora" in result:
        return result
    return {**result, "corpora": {"fifth": {"info": {**result["corpus_info"], "max_size": 5000},
                                            "runs": result["runs"]}}}


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
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--every", type=int, default=5, help="--ablation's corpus: every N-th verse (1 = all)")
    parser.add_argument("--max-size", type=int, default=5000, help="--ablation's vocabulary size, <unk> included")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wlm_compare"),
                        help="runs and corpora; a finished run found here is reused (the same command resumes)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="where the .json and .md go")
    parser.add_argument("--table-only", action="store_true", help="rewrite wlm_compare.md from its .json")
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)  # a smoke run: at most N verses a split
    args = parser.parse_args()
    if args.limit and args.out == ROOT / "benchmarks":
        parser.error("--limit is a smoke run: give --out, away from the committed tables")
    if args.table_only:
        path = args.out / "wlm_compare.md"
        return write_compare(upgraded(json.loads(path.with_suffix(".json").read_text())), path)
    load, started = [os.getloadavg()[0]], time.time()
    if args.ablation:
        info = export_corpus(args.work / "corpus", args.every, args.max_size)
        result = {**ablation(args.work / "corpus", args.work), "corpus": describe(info), "corpus_info": info}
    else:
        corpora = {name: (exported(args.work / name / "corpus", *CORPORA[name][:2], args.limit),
                          args.work / name / "corpus") for name in args.corpora}
        result = {"corpora": compare(args.work, args.peer.resolve(), args.rounds, corpora),
                  "peer_commit": args.peer_commit, "rounds": args.rounds}
    load.append(os.getloadavg()[0])
    result.update(setting=SETTING, load=[round(x, 2) for x in load], seconds=round(time.time() - started))
    name = "wlm_ablation" if args.ablation else "wlm_compare"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (write_ablation if args.ablation else write_compare)(result, args.out / f"{name}.md")


if __name__ == "__main__":
    main()

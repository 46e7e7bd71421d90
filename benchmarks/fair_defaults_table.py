"""benchmarks/fair_defaults.{json,md} from benchmarks/fair_defaults.py's results, with the rule applied.

    python benchmarks/fair_defaults_table.py     # the .md again from the committed .json
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

# the project's defaults before this measurement (the keys' values in conf/ at the time)
PREVIOUS = {"model.embedding_init": "normal", "model.head_init": "uniform", "model.dropout_placement": "all",
            "model.cell.forget_bias": "0.0"}
CELLS = ("lstm", "gru")


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def runs_of(result: dict, corpus: str, variant: str, cell: str) -> list[dict]:
    return sorted((r for r in result["runs"] if (r["corpus"], r["variant"], r["cell"]) == (corpus, variant, cell)),
                  key=lambda r: r["seed"])


def difference(ours: list[float], peer: list[float]) -> tuple[float, float] | None:
    """Mean of ours minus the peer's and twice the standard error of that difference; None under 3 seeds."""
    if min(len(ours), len(peer)) < 3:
        return None
    (m_o, s_o), (m_p, s_p) = mean_sd(ours), mean_sd(peer)
    return m_o - m_p, 2 * (s_o ** 2 / len(ours) + s_p ** 2 / len(peer)) ** 0.5


def versus_peer(ours: list[dict], peer: list[dict]) -> dict:
    """Mean valid ppl above the peer's, twice the standard error of that difference, and the verdict:
    'worse' beyond seed noise, 'ok', or 'pending' under 3 seeds on either side."""
    found = difference([r["valid_ppl"] for r in ours], [r["valid_ppl"] for r in peer])
    if found is None:
        return {"delta": None, "noise": None, "verdict": "pending"}
    return {"delta": found[0], "noise": found[1], "verdict": "worse" if found[0] > found[1] else "ok"}


def cell_ratio(result: dict, corpus: str, variant: str) -> list[float]:
    """LSTM / GRU valid ppl, seed by seed (a forget-bias variant's LSTM beside the reference's GRU)."""
    gru = {r["seed"]: r for r in runs_of(result, corpus, "reference" if "forget" in variant else variant, "gru")}
    return [r["valid_ppl"] / gru[r["seed"]]["valid_ppl"] for r in runs_of(result, corpus, variant, "lstm")
            if r["seed"] in gru]


def gap_versus_peer(result: dict, corpus: str, variant: str) -> dict:
    """Does the variant move one cell against the other? The LSTM/GRU valid-ppl ratio against the peer's,
    'moved' when it differs either way beyond 2 standard errors."""
    found = difference(cell_ratio(result, corpus, variant), cell_ratio(result, corpus, "peer"))
    if found is None:
        return {"delta": None, "noise": None, "verdict": "pending"}
    return {"delta": found[0], "noise": found[1], "verdict": "moved" if abs(found[0]) > found[1] else "ok"}


def passes(result: dict, variant: str) -> dict:
    """'yes' / 'no' / 'pending' for each half of the rule, on every corpus: no cell that the variant applies
    to ends worse than the peer ('worse_than_peer'); the cells keep the peer's ratio ('cells_kept_apart')."""
    cells = ("lstm",) if variant == "model.cell.forget_bias" else CELLS

    def fold(verdicts: list[str]) -> str:
        return "pending" if "pending" in verdicts else "yes" if set(verdicts) == {"ok"} else "no"

    worse = fold([versus_peer(runs_of(result, c, variant, cell), runs_of(result, c, "peer", cell))["verdict"]
                  for c in result["corpora"] for cell in cells])
    gap = fold([gap_versus_peer(result, c, variant)["verdict"] for c in result["corpora"]])
    both = "no" if "no" in (worse, gap) else "pending" if "pending" in (worse, gap) else "yes"
    return {"no_cell_worse": worse, "ratio_kept": gap, "both": both}


def adding_summary(result: dict) -> dict:
    out = {}
    for bias in (0.0, 1.0):
        rows = [r for r in result.get("adding", []) if r["forget_bias"] == bias]
        solved = [r["steps"] for r in rows if r["solved"]]
        out[bias] = {"runs": len(rows), "solved": len(solved),
                     "mean_steps_to_solve": statistics.mean(solved) if solved else None,
                     "mean_test_mse": statistics.mean(r["test_mse"] for r in rows) if rows else None,
                     "test_mse": [r["test_mse"] for r in rows]}
    # bias 1's mean test MSE minus bias 0's, and twice its standard error (None under 3 runs a side)
    out["test_mse_difference"] = difference(out[1.0]["test_mse"], out[0.0]["test_mse"])
    return out


def adding_prefers_bias_1(summary: dict) -> bool | None:
    zero, one = summary[0.0], summary[1.0]
    if min(zero["runs"], one["runs"]) < 3:
        return None
    if one["solved"] != zero["solved"]:
        return one["solved"] > zero["solved"]
    if one["solved"]:
        return one["mean_steps_to_solve"] < zero["mean_steps_to_solve"]
    return summary["test_mse_difference"][0] < -summary["test_mse_difference"][1]  # none solved: lower MSE, beyond noise


def decide(result: dict) -> dict:
    """Per key: the previous default is kept only if it passes both halves of the rule; else the reference's
    value. The forget bias (reference 0) becomes 1 only if 1 passes on the language models and learns the
    adding problem better."""
    decisions = {}
    ref_passes = passes(result, "reference")["both"]
    for key, reference in result["reference"].items():
        alternative, previous = result["alternatives"][key], PREVIOUS[key]
        alt = passes(result, key)
        if key == "model.cell.forget_bias":
            prefers = adding_prefers_bias_1(adding_summary(result))
            chosen = alternative if alt["both"] == "yes" and prefers else reference
            why = (f"1 passes on the language models: {alt['both']}; the adding problem prefers 1: "
                   f"{'pending' if prefers is None else 'yes' if prefers else 'no'}")
        elif previous == reference:
            chosen, why = reference, f"previous default = word_language_model's, which passes: {ref_passes}"
        else:
            chosen = previous if alt["both"] == "yes" else reference
            why = f"previous default {previous} passes: {alt['both']}"
        decisions[key] = {"reference": reference, "alternative": alternative, "previous": previous,
                          "alternative_no_cell_worse": alt["no_cell_worse"], "alternative_ratio_kept":
                          alt["ratio_kept"], "reference_passes": ref_passes, "chosen": chosen, "why": why}
    return decisions


def chosen_variant(result: dict, decisions: dict) -> str | None:
    """The measured variant that holds every chosen value (None if the choice combines two changes)."""
    changed = [k for k, d in decisions.items() if d["chosen"] != d["reference"]]
    return "reference" if not changed else changed[0] if len(changed) == 1 else None


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def corpus_line(name: str, info: dict) -> str:
    return (f"`{name}`: every {info['verses_every']}th verse of each KJV split, vocabulary {info['vocab']}, "
            f"tokens train/valid/test {info['tokens']['train']:,} / {info['tokens']['val']:,} / "
            f"{info['tokens']['test']:,}")


def sessions_line(result: dict) -> str:
    """Load before/after and minutes, per session when the runs were made in more than one."""
    sessions = result.get("sessions") or [{"load": result["load"], "seconds": result.get("seconds", 0)}]
    parts = [f"load before/after {s['load'][0]} / {s['load'][-1]}, {s.get('seconds', 0) / 60:.1f} min"
             for s in sessions]
    if len(sessions) == 1:
        return "L" + parts[0][1:] + "."
    return f"Made in {len(sessions)} sessions (each adds only the runs missing): " + "; ".join(parts) + "."


def write_tables(result: dict, stem: Path) -> None:
    decisions = decide(result)
    result["decisions"], result["adding_summary"] = decisions, {str(k): v for k, v in adding_summary(result).items()}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Fair defaults off the home corpus: every candidate against word_language_model",
             "", f"Generated by `benchmarks/fair_defaults.py` (peer: pytorch/examples word_language_model "
             f"@ {result['peer_commit'][:12]}, run from its own checkout). Seeds {result['seeds']}, "
             f"{result['epochs']} epochs with word_language_model's annealing (lr ÷ 4 after an epoch without a "
             f"new best validation loss; ours `lr_anneal=0.25`), one thread, one run at a time. Corpora: "
             + "; ".join(corpus_line(n, i) for n, i in result["corpora"].items()) + ". Our setting: "
             f"{' '.join(result['setting'])}; the peer at its defaults (the same values), under the glibc "
             f"thresholds our runs set. {sessions_line(result)}", "",
             ("Rule: a value stays a default only if, on every corpus, (1) no cell ends worse than the peer "
             "beyond seed noise: mean valid ppl above the peer's by more than 2 standard errors of the "
             "difference (2·√(s²_ours/n + s²_peer/n)), and (2) it does not move one cell against the other: "
             "the LSTM/GRU valid-ppl ratio (seed by seed) differs from the peer's by no more than 2 standard "
             "errors, either way. Else word_language_model's value is the default. `reference` is our cells at word_language_model's own values "
             f"({', '.join(f'{k}={v}' for k, v in result['reference'].items())}); every other row changes one "
             "key from there. Valid ppl: after the last epoch (both tools); test ppl: ours of the last "
             "epoch's model, the peer's of its best-validation model."), "",
             "## Decisions", "",
             ("| key | word_language_model's | alternative | previous default | alternative: no cell worse "
             "than the peer | alternative: LSTM/GRU ratio as the peer's | chosen | why |"),
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{k}` | {d['reference']} | {d['alternative']} | {d['previous']} | "
              f"{d['alternative_no_cell_worse']} | {d['alternative_ratio_kept']} | **{d['chosen']}** | {d['why']} |"
              for k, d in decisions.items()]
    lines += ["", "## Per corpus", "",
              ("| corpus | cell | run | valid ppl per seed | valid mean ± sd | test mean ± sd | valid − peer | "
              "2 SE | verdict |"), "|---|---|---|---|---:|---:|---:|---:|---|"]
    variants = ["peer", "reference", *result["alternatives"]]
    for corpus in result["corpora"]:
        for cell in CELLS:
            peer = runs_of(result, corpus, "peer", cell)
            for variant in variants:
                runs = runs_of(result, corpus, variant, cell)
                if not runs:
                    continue
                (vm, vs), (tm, ts) = (mean_sd([r[k] for r in runs]) for k in ("valid_ppl", "test_ppl"))
                name = variant if variant in ("peer", "reference") else \
                    f"{variant}={result['alternatives'][variant]}"
                per_seed = ", ".join(f"{r['valid_ppl']:.2f}" for r in runs)
                v = versus_peer(runs, peer) if variant != "peer" else {"delta": None, "noise": None, "verdict": ""}
                lines.append(f"| {corpus} | {cell.upper()} | {name} | "
                             f"{per_seed} | {vm:.2f} ± {vs:.2f} | "
                             f"{tm:.2f} ± {ts:.2f} | {fmt(v['delta'])} | {fmt(v['noise'])} | {v['verdict']} |")
    lines += ["", "LSTM / GRU valid ppl, seed by seed (a forget-bias row: its LSTM over the reference's GRU):", "",
              "| corpus | run | LSTM/GRU per seed | mean ± sd | − peer's | 2 SE | verdict |",
              "|---|---|---|---:|---:|---:|---|"]
    for corpus in result["corpora"]:
        for variant in variants:
            ratios = cell_ratio(result, corpus, variant)
            if len(ratios) > 1:
                g = gap_versus_peer(result, corpus, variant) if variant != "peer" else \
                    {"delta": None, "noise": None, "verdict": ""}
                lines.append(f"| {corpus} | {variant} | {', '.join(f'{x:.3f}' for x in ratios)} | "
                             f"{mean_sd(ratios)[0]:.3f} ± {mean_sd(ratios)[1]:.3f} | {fmt(g['delta'], 3)} | "
                             f"{fmt(g['noise'], 3)} | {g['verdict']} |")
    summary = adding_summary(result)
    lines += ["", "## LSTM forget bias on the adding problem", "",
              (f"`{' '.join(result['adding_setting'])}`: solved = validation MSE below 0.05 × the baseline's, "
              "checked every 100 steps; unsolved runs stop at the step budget."), "",
              "| forget bias | seed | solved | steps | test MSE |", "|---:|---:|---|---:|---:|"]
    lines += [f"| {r['forget_bias']:g} | {r['seed']} | {'yes' if r['solved'] else 'no'} | {r['steps']} | "
              f"{r['test_mse']:.4f} |" for r in result.get("adding", [])]
    lines += [f"\nForget bias {b:g}: {s['solved']}/{s['runs']} solved, mean steps to solve "
              f"{fmt(s['mean_steps_to_solve'], 0)}, mean test MSE {fmt(s['mean_test_mse'], 4)}."
              for b, s in summary.items() if b != "test_mse_difference"]
    if summary["test_mse_difference"]:
        lines.append("\nTest MSE, bias 1 − bias 0: {:.4f} ± {:.4f} (2 SE).".format(*summary["test_mse_difference"]))
    lines += side_by_side(result, decisions)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def side_by_side(result: dict, decisions: dict) -> list[str]:
    chosen = chosen_variant(result, decisions)
    lines = ["", "## Side by side after the change: the chosen defaults beside word_language_model", ""]
    if chosen is None:
        return lines + ["The chosen defaults combine two changes, a setting not measured here."]
    lines += [(f"The same runs as above (`{chosen}`); tokens/s is training tokens over the training loop's wall "
              "time without validation, median over the seeds; ours / peer: each seed's run over the peer's "
              "run of the same seed (the runs came one after the other, not alternated, on a shared machine)."), "",
              "| corpus | cell | run | valid ppl | test ppl | tokens/s | ours / peer, median (min–max) |",
              "|---|---|---|---:|---:|---:|---:|"]
    for corpus in result["corpora"]:
        for cell in CELLS:
            peer = {r["seed"]: r for r in runs_of(result, corpus, "peer", cell)}
            for name, runs in (("word_language_model", list(peer.values())),
                               ("rnnlab fused", runs_of(result, corpus, chosen, cell))):
                if not runs:
                    continue
                ratios = [r["tokens_per_second"] / peer[r["seed"]]["tokens_per_second"] for r in runs
                          if r["seed"] in peer]
                speed = f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})" if ratios else "–"
                lines.append(f"| {corpus} | {cell.upper()} | {name} | "
                             f"{statistics.mean(r['valid_ppl'] for r in runs):.2f} | "
                             f"{statistics.mean(r['test_ppl'] for r in runs):.2f} | "
                             f"{statistics.median(r['tokens_per_second'] for r in runs):,.0f} | {speed} |")
    return lines


if __name__ == "__main__":
    stem = Path(__file__).resolve().parent / "fair_defaults"
    write_tables(json.loads(stem.with_suffix(".json").read_text()), stem)

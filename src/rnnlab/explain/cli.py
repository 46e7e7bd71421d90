"""Look inside a cell: ``python -m rnnlab.explain step|text …``.

``step``: one step of a cell worked like a textbook example, every intermediate of the equations
(products, sums with the bias, activations) as a table, or ``--json``. Weights from a JSON file in the
textbook names (``--cell gru --weights w.json``) or from a trained run (``--run DIR --layer L
--direction D``). The numbers come from the project's own cell (see :mod:`rnnlab.explain.trace`).

``text``: per-token gate activity of a trained model over a sentence (``--sentence``) or a held-out
example (``--example N``): a heatmap PNG and a coloured terminal view; ``--top-k K`` lists the tokens
with the lowest / highest mean reset (GRU r_t) or forget (LSTM f_t) gate over the validation split;
``--wandb`` logs the figure (see :mod:`rnnlab.explain.heatmap`).

Examples::

    python -m rnnlab.explain step --cell gru --weights experiments/gru_step_example.json
    python -m rnnlab.explain step --run outputs/…/ --token 3 --json
    python -m rnnlab.explain text --run outputs/…/ --sentence "the movie was not good" --top-k 10
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from rnnlab.explain import trace as gt
from rnnlab.explain import weights as gw

INPUT_KEYS = ("x_t", "h_prev", "c_prev")  # a weights file may also hold the step's inputs


def parse_vector(text: str | list | None, name: str) -> list[float] | None:
    """'1, 0.5' or '[1, 0.5]' (or a list already) -> floats; None stays None."""
    if text is None or isinstance(text, list):
        return text
    try:
        values = json.loads(text) if text.strip().startswith("[") else text.replace(",", " ").split()
        return [float(v) for v in values]
    except (ValueError, TypeError):
        raise ValueError(f"{name}: expected numbers separated by commas, e.g. '1, 0.5', got {text!r}") \
            from None


def load_weights_file(path: str) -> dict:
    """The JSON object of a weights file (names of ``gate_trace.weight_keys``, optionally the inputs)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file {path} not found") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of named weights, got {type(data).__name__}")  # noqa: TRY004 - bad file content, not a bad argument
    return data


def dumps_trace(data: dict) -> str:
    """JSON with one line per trace entry (full precision)."""
    head = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in data.items()
            if k != "trace"]
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data["trace"].items())
    return "{\n" + "\n".join(head) + '\n "trace": {\n' + rows + "\n }\n}"


def _step(args: argparse.Namespace) -> dict:
    if (args.run is None) == (args.weights is None):
        raise ValueError("give either --weights FILE (with --cell) or --run DIR")
    if args.weights and (args.token is not None or args.dump_weights):
        raise ValueError("--token and --dump-weights read a trained cell: use them with --run")
    notes: list[str] = []
    inputs = {"x_t": parse_vector(args.x, "--x"), "h_prev": parse_vector(args.h, "--h"),
              "c_prev": parse_vector(args.c, "--c")}
    if args.weights:
        data = load_weights_file(args.weights)
        for key in INPUT_KEYS:  # the file may hold the step's inputs; flags win
            value = data.pop(key, None)
            inputs[key] = inputs[key] if inputs[key] is not None else value
        kind = args.cell or data.pop("cell", None)
        data.pop("cell", None)
        if kind is None:
            raise ValueError("--cell rnn|lstm|gru is needed with --weights")
        sizes = [len(inputs[k]) if isinstance(inputs[k], list) else None for k in ("x_t", "h_prev")]
        kwargs = {"nonlinearity": args.nonlinearity} if kind == "rnn" else {}
        cell, defaulted = gw.cell_from_weights(kind, data, *sizes, **kwargs)  # sizes: where no weight tells
        source = f"weights {args.weights}"
        if defaulted:
            notes.append(f"defaulted to zeros (not in the file): {', '.join(defaulted)}")
        notes.append("the file's b_<g> is written to the cell's bias_ih block; bias_hh is zero")
    else:
        if args.cell:
            raise ValueError("--cell is read from the run; leave it out with --run")
        cell, ctx = gw.cell_from_run(args.run, args.layer, args.direction)
        source = f"run {args.run} (layer {args.layer}, direction {args.direction})"
        if args.token is not None:
            if args.layer != 0 or inputs["x_t"] is not None:
                raise ValueError("--token gives layer 0's input (its embedding); not with --x or --layer > 0")
            from rnnlab.explain.heatmap import encode

            model = ctx["model"]
            if model.spec.itos is None:
                raise ValueError("--token needs a run with a vocabulary")
            ids, tokens = encode(args.token, model.spec.itos)
            inputs["x_t"] = model.embedding(torch.tensor(ids[:1])).detach()[0].tolist()
            notes.append(f"x_t is the embedding of token {tokens[0]!r} (id {ids[0]})")
        if args.dump_weights:
            Path(args.dump_weights).write_text(json.dumps(gw.export_weights(cell), indent=1))
            notes.append(f"weights written to {args.dump_weights} (b_<g> = bias_ih + bias_hh)")
    kind = gw.cell_kind(cell)
    for key, what in (("x_t", "--x"), ("h_prev", "--h"), ("c_prev", "--c")):
        if inputs[key] is None and (key != "c_prev" or kind == "lstm"):
            if key == "x_t":
                raise ValueError(f"x_t is needed: pass {what} (or --token with a run)")
            notes.append(f"{key} not given: zeros")
    trace = gt.trace_step(cell, inputs["x_t"], inputs["h_prev"], inputs["c_prev"])
    reset_after = bool(getattr(cell, "reset_after", False))
    variant = {"gru": "reset-after (cuDNN)" if reset_after else "textbook (r_t ⊙ h_{t-1}) W_hh"}.get(kind)
    info = {"cell": kind, "source": source, "input_size": cell.input_size, "hidden_size": cell.hidden_size,
            "variant": variant, "nonlinearity": getattr(cell, "nonlinearity", None),
            "reset_after": reset_after, "notes": [f"from {source}", *notes],
            "title": f"{kind.upper()} step" + (f", {variant}" if variant else "")}
    if args.json:
        print(dumps_trace(gt.trace_json(trace, info)))
    else:
        gt.render_trace(trace, info, max_units=args.max_units)
    return gt.trace_json(trace, info)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "sentence"


def _text(args: argparse.Namespace) -> dict:
    from rnnlab.explain import heatmap as gh  # imports Lightning (seconds): only here
    from rnnlab.explain import views

    if args.sentence is not None and args.example is not None:
        raise ValueError("give --sentence TEXT or --example N, not both")
    if args.sentence is None and args.example is None and not args.top_k:
        raise ValueError("give --sentence TEXT or --example N (and/or --top-k K)")
    model, cfg = gh.load_inspectable(args.run)
    spec, kind = model.spec, gw.cell_kind(model.recurrent.cells[0])
    dm, result = None, {"cell": kind, "data": spec.name, "task": spec.task}
    if args.example is not None or args.top_k:
        dm = gh.build_datamodule(cfg, model, args.data_root)
    if args.sentence is not None or args.example is not None:
        if args.sentence is not None:
            if spec.itos is None:
                raise ValueError(f"the {spec.name} data set feeds float features, not words: use --example N")
            ids, tokens = gh.encode(args.sentence, spec.itos)
            x = torch.tensor([ids])  # (1, T)
            y = torch.tensor([ids[1:] + [gh.IGNORE_INDEX]]) if spec.task == "language_modeling" else None
            name = _slug(args.sentence)
        else:
            x, y = gh.example(dm, args.split, args.example)
            tokens = ([spec.itos[i] for i in x[0].tolist()] if spec.itos is not None
                      else [f"t{t}" for t in range(x.shape[1])])
            name = f"{args.split}-{args.example}"
        rows, pred = gh.activity(model, x, y, None, args.layer, args.direction)
        rows = {k: v[0].double().numpy() for k, v in rows.items()}
        if spec.itos is None:  # float features: the input itself as rows above the gates
            rows = {**views.input_rows(x[0].double().numpy()), **rows}
        what = f"{args.split} example {args.example}" if args.sentence is None else "a sentence"
        title = f"{kind.upper()} on {spec.name}, {what}, layer {args.layer} direction {args.direction}"
        if spec.readout == "last" and spec.task == "classification":
            p = torch.softmax(pred[0], -1)
            title += f": predicted class {int(p.argmax())} (p={float(p.max()):.2f})"
            if y is not None:
                title += f", label {int(y[0])}"
        elif "loss" in rows:
            title += f": mean next-token loss {np.nanmean(rows['loss']):.3f}"
        out = Path(args.out) if args.out else Path(args.run) / "explain" / f"gates-{name}.png"
        shown = title + (f"\ninput: {views.shorten(' '.join(tokens), 110)}" if spec.itos is not None else "")
        result.update(tokens=tokens, rows={k: v.tolist() for k, v in rows.items()}, title=title,
                      png=str(views.plot_heatmap(tokens, rows, out, shown)))
        if not args.no_terminal:
            views.render_terminal(tokens, rows, title=title)
            print(f"heatmap: {out}")
    if args.top_k:
        gate = args.gate or gh.TOPK_DEFAULT[kind]
        result["top"] = gh.top_tokens(model, dm, gate, args.top_k, args.split, args.max_batches,
                                      args.min_count, args.layer, args.direction)
        if not args.no_terminal:
            views.render_top(result["top"])
    if args.wandb:
        if "png" not in result:
            raise ValueError("--wandb logs the heatmap: give --sentence or --example too")
        views.log_to_wandb(Path(result["png"]), cfg, args.run, result.get("top"))
    if args.json:
        print(json.dumps(result, indent=1, default=float))
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnnlab.explain", epilog="examples:" + __doc__.split("::")[1],
                                description="Look inside a cell: one step worked out (step), gate activity "
                                            "over text (text).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("step", help="trace one step of a cell, every intermediate of its equations")
    s.add_argument("--cell", choices=sorted(gw.CELLS), help="the cell of a --weights file")
    s.add_argument("--weights", help="JSON of named weights (W_xr, W_hr, b_r, …, and x_t, h_prev, c_prev)")
    s.add_argument("--run", help="a trained run directory (config.yaml + model.pt)")
    s.add_argument("--layer", type=int, default=0)
    s.add_argument("--direction", type=int, default=0, help="0 forward, 1 backward (bidirectional runs)")
    s.add_argument("--x", help="x_t, e.g. '1, 0.5'")
    s.add_argument("--token", help="with --run: x_t = the embedding of this word")
    s.add_argument("--h", help="h_{t-1} (zeros when not given)")
    s.add_argument("--c", help="c_{t-1} of an LSTM (zeros when not given)")
    s.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh", help="φ of an RNN --weights")
    s.add_argument("--dump-weights", help="with --run: write the cell's weights (textbook names) as JSON")
    s.add_argument("--max-units", type=int, default=8, help="values shown per row in the table")
    s.add_argument("--json", action="store_true", help="print the trace as JSON instead of a table")
    t = sub.add_parser("text", help="per-token gate activity over a sentence or a held-out example")
    t.add_argument("--run", required=True, help="a trained run directory")
    t.add_argument("--sentence", help="text to explain (the run's vocabulary; unknown words -> <unk>)")
    t.add_argument("--example", type=int, help="index of a held-out example instead of a sentence")
    t.add_argument("--split", choices=("val", "test"), default="val")
    t.add_argument("--layer", type=int, default=0)
    t.add_argument("--direction", type=int, default=0)
    t.add_argument("--out", help="PNG path (default <run>/explain/gates-<sentence>.png)")
    t.add_argument("--top-k", type=int, default=0, help="list the K tokens with the lowest/highest mean gate")
    t.add_argument("--gate", help="gate for --top-k: r z (GRU), i f o (LSTM), dh; default r / f / dh")
    t.add_argument("--max-batches", type=int, default=50, help="validation batches read for --top-k")
    t.add_argument("--min-count", type=int, default=5, help="tokens seen fewer times are not ranked")
    t.add_argument("--data-root", help="where the run's data set lies here, when not at its data.root")
    t.add_argument("--wandb", action="store_true", help="log the figure to W&B (offline without an API key)")
    t.add_argument("--no-terminal", action="store_true", help="no terminal rendering")
    t.add_argument("--json", action="store_true", help="print the per-token values as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    errors: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)
    if args.command == "text":
        from rnnlab.explain.heatmap import DataUnavailable

        errors += (DataUnavailable,)
    try:
        (_step if args.command == "step" else _text)(args)
    except errors as error:
        print(f"explain {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


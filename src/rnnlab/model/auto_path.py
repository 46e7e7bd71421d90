"""``model.impl=auto``: train on the faster kernel for the cell, measure through our cells, one set of weights.

The layer holds our cells (their parameters are the only ones, checkpoint keys ``cells.*`` as unrolled).
A step that nobody measures runs the faster of two paths over those same parameters:

- ``fused``: ``torch.nn.RNN/LSTM/GRU``'s kernel (cuDNN on a GPU), through a ``torch.nn`` module built on
  the meta device (no memory, no random numbers drawn) whose parameters are then the cells' own
  Parameter objects, so its gradients land on the cells;
- ``unrolled``: the cells' scans, as ``model.impl=unrolled``.

A measured step (an observer set or gates recorded: :class:`~rnnlab.diagnostics.probe.GradientProbe`) runs
the unrolled twin, so ‖∂L/∂h_t‖, the gates and their saturation are measured as with ``impl=unrolled``.
The twin computes the fused kernel's function: under auto the GRU is torch's reset-after variant on both
paths (``prepare_for_fused``), and results.json's ``fairness`` says which variant and which path ran.

The rule is a table, not a timing at start-up: a start-up timing on a shared machine could pick
differently from run to run, and the path decides the float rounding of every training step, so a run
would not repeat. On CPU (one thread, B = 64, H ∈ {64, 128}, T ∈ {100, 200, 400},
benchmarks/claims_shapes.md) the LSTM's fused kernel (oneDNN) is clearly the faster at H = 64 (1.45× at
T = 100) and the RNN's scan at every shape (1.2–1.3×); elsewhere the two paths lie within about 10 % of
each other, and unrolled is kept, because then a run's weights do not depend on whether diagnostics are
on, bit for bit. The rule is per cell, not per shape: the shapes where it misses the faster path by more
than 5 % in the committed table (the GRU at H = 128, T ≥ 200; the LSTM at H = 128, T = 100) changed size
or sign between three runs of the bench on this shared machine (LSTM, H = 128, T = 100: unrolled / fused
0.84, 1.11, 1.09), so a shape table fitted to them would fit noise; the GRU at H = 128, T ≥ 200 is the
candidate for one (fused ahead in all three, by 1–14 %). On CUDA the fused kernel is cuDNN, which a Python loop over
time steps does not reach: fused for every cell (not measured here: no GPU on the benchmark machine).
"""

from __future__ import annotations

from torch import nn

FUSED_ON_CPU = frozenset({"LSTMCell"})  # cell classes whose fused kernel is faster on CPU (see the docstring)


def faster_path(cell_type: type, device_type: str) -> str:
    """``"fused"`` or ``"unrolled"``: the path auto trains a cell of ``cell_type`` on, on that device."""
    if device_type == "cuda":
        return "fused"
    return "fused" if cell_type.__name__ in FUSED_ON_CPU else "unrolled"


def paths_by_device(cell_type: type) -> dict[str, str]:
    """The rule for one cell, as results.json records it."""
    return {device: faster_path(cell_type, device) for device in ("cpu", "cuda")}


def fused_kernel(proto: nn.Module, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout: float) -> nn.RNNBase:
    """The cell's ``torch.nn`` module on the meta device: it holds no memory and draws no random numbers
    (an auto run draws the same numbers as an unrolled one); :func:`point_at` gives it its parameters."""
    return proto.fused(input_size, hidden_size, num_layers, bias=proto.bias, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
                       device="meta", **proto.fused_kwargs())


def point_at(kernel: nn.RNNBase, parameters: dict[str, nn.Parameter], training: bool) -> nn.RNNBase:
    """Make ``kernel`` compute with ``parameters`` (torch.nn names -> the cells' Parameter objects, not
    copies) in train or eval mode. Cheap (dict assignments); torch.nn re-reads its flat weight list
    when it sees them changed, so a device or dtype move of the cells is followed."""
    for name, p in parameters.items():
        kernel._parameters[name] = p
    kernel.training = training
    return kernel

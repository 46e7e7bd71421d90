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
benchmarks/claims_shapes.md, and four runs of the H = 128 rows, loaded and quiet):

- the RNN's scan is faster at every shape (1.2–1.3×): unrolled;
- the LSTM's fused kernel (oneDNN) is faster at H = 64 (1.43× at T = 100), our scan at H = 128, T = 100
  (unrolled / fused 1.17 quiet; 0.84, 1.11, 1.09 loaded) and level with it at H = 128, T ≥ 200: fused
  below H = 128, unrolled from there;
- the GRU's fused kernel is faster at H = 128, T ≥ 200 (unrolled / fused 0.86–0.92 in every run), level
  or slower elsewhere: fused there, unrolled elsewhere.

Where the two lie within a few per cent, unrolled is kept, because then a run's weights do not depend on
whether diagnostics are on, bit for bit. On CUDA the fused kernel is cuDNN, which a Python loop over time
steps does not reach: fused for every cell (not measured here: no GPU on the benchmark machine).
"""

from __future__ import annotations

from torch import nn

LSTM_FUSED_BELOW_H = 128            # CPU: the LSTM trains fused when H < 128
GRU_FUSED_FROM_H, GRU_FUSED_FROM_T = 128, 200  # CPU: the GRU trains fused when H ≥ 128 and T ≥ 200


def faster_path(cell_type: type, device_type: str, hidden_size: int, seq_len: int) -> str:
    """``"fused"`` or ``"unrolled"``: the path auto trains a cell of ``cell_type`` on, on that device, at
    hidden size H and sequence length T (the module docstring says where the thresholds come from)."""
    if device_type == "cuda":
        return "fused"
    name = cell_type.__name__
    if name == "LSTMCell":
        return "fused" if hidden_size < LSTM_FUSED_BELOW_H else "unrolled"
    if name == "GRUCell":
        return "fused" if hidden_size >= GRU_FUSED_FROM_H and seq_len >= GRU_FUSED_FROM_T else "unrolled"
    return "unrolled"


def paths_by_device(cell_type: type, hidden_size: int) -> dict[str, str]:
    """The rule for one cell at hidden size H, as results.json records it (on CPU it may depend on T)."""
    short = faster_path(cell_type, "cpu", hidden_size, 1)
    long = faster_path(cell_type, "cpu", hidden_size, 10**9)
    cpu = short if short == long else f"{long} for T ≥ {GRU_FUSED_FROM_T}, {short} below"
    return {"cpu": cpu, "cuda": faster_path(cell_type, "cuda", hidden_size, 1)}


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

"""What keeps a language model's training step as lean as word_language_model's (benchmarks/wlm_compare.md).
Each test checks the mechanism of one fix, never a timing: speed targets live in the benchmarks."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from rnnlab.cells.lstm import LSTMCell
from rnnlab.data.base import DataSpec
from rnnlab.model.sequence_model import SequenceModel

V = 300
LM_SPEC = {"name": "lm", "task": "language_modeling", "readout": "all", "output_size": V, "vocab_size": V}


@pytest.mark.parametrize("impl", ["unrolled", "fused", "auto"])
def test_the_head_is_one_addmm_over_contiguous_rows(impl):
    """The recurrent layer returns a batch-first view of time-major memory; F.linear on such a 3-D view runs a
    matmul and adds the bias in a second pass over the (B, T, V) logits. The head must get contiguous rows."""
    torch.manual_seed(0)
    model = SequenceModel(LSTMCell, DataSpec(**LM_SPEC), hidden_size=8, num_layers=2, dropout=0.2, impl=impl,
                          embedding_dim=6).train()
    seen = []
    model.head.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    x = torch.randint(0, V, (4, 7))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        logits, _ = model(x)
    assert seen == [True]
    shapes_of = {}
    for event in prof.events():
        shapes_of.setdefault(event.name, []).append(event.input_shapes)
    assert [[4 * 7, 8], [8, V]] in [s[1:3] for s in shapes_of.get("aten::addmm", [])]  # bias, rows, weightᵀ
    passes_over_logits = [s for name in ("aten::add_", "aten::add") for s in shapes_of.get(name, [])
                          if s and s[0] == [4, 7, V]]
    assert not passes_over_logits
    assert logits.shape == (4, 7, V)

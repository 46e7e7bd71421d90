"""On a CUDA device: cuDNN (fused) equals our cells, and a real run trains with trainer=gpu.

Marked ``gpu``: run them on a GPU machine with ``python -m pytest -m gpu``; without CUDA they skip.
"""

import pytest
import torch

from rnnlab.training.train import train
from test_recurrent_equivalence import CELLS, _grads, _pair, _run

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_cudnn_equals_our_cells_on_the_gpu(cell):
    unrolled, fused = (layer.cuda() for layer in _pair(CELLS[cell], bidirectional=True))
    fused.load_state_dict(unrolled.state_dict())
    x = torch.randn(3, 6, 5, dtype=torch.float64, device="cuda")
    lengths = torch.tensor([6, 4, 1])
    outs = [_run(layer, x, lengths, None) for layer in (unrolled, fused)]
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-7, atol=1e-9)
    for name, grad in _grads(fused).items():
        torch.testing.assert_close(_grads(unrolled)[name], grad, rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.parametrize("impl", ["unrolled", "fused"])
def test_a_run_trains_on_the_gpu(make_config, impl):
    results = train(make_config(["trainer=gpu", f"model.impl={impl}", "logger=none"]))
    assert results["status"] == "ok", results.get("traceback")
    assert results["metrics"]["test/loss"] is not None

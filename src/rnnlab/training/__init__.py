"""One run: config -> data, model, LightningModule, callbacks, checkpoints, loggers -> results.json.

The top of the import graph: imports model, data, cells and diagnostics. Entry point: ``train(cfg)`` in
:mod:`rnnlab.training.train` (``python run.py``).
"""

"""Gradient behaviour through time: the callback, the probe, decay fits and plots.

``python -m rnnlab.diagnostics <run or sweep dir>`` draws the plots. Imports model and cells only.
"""

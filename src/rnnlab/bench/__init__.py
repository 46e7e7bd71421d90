"""Speed: ``python -m rnnlab.bench`` (cells × implementations × shapes, framework and diagnostics overhead)."""

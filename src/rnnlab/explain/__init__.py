"""Look inside a cell: ``python -m rnnlab.explain step|text …`` (a traced step, gate heatmaps over text)."""

"""The sequence model: embeddings or features -> recurrent layer (step loop or scan, stacked, two directions) -> head.

Imports cells and data only.
"""

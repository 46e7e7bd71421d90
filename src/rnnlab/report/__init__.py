"""Runs into tables: ``python -m rnnlab.report <sweep dir>``; the sweep table written at a multirun's end."""

"""Runs into evidence: ``python -m rnnlab.report <sweep dir>`` aggregates seeds, evaluates declared claims and
draws figures (runs → aggregate → claims → figures, markdown, wandb_report); sweep_table writes a multirun's
summary.md."""

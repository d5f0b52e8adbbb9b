"""Experiments built from training runs: model comparisons."""

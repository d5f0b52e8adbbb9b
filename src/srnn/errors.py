"""The library's own error types: every user-facing failure is one of these."""

from __future__ import annotations


class SRNNError(Exception):
    """Base class of every error the library raises on purpose."""


class DataError(SRNNError):
    """A data set or file is missing, corrupt or not in the expected format."""


class ConfigError(SRNNError):
    """An option or configuration value is invalid."""


class CheckpointError(SRNNError):
    """A checkpoint is missing, corrupt or does not match the model."""


class TrainingError(SRNNError):
    """Training cannot go on (e.g. the loss or its gradients stay non-finite)."""

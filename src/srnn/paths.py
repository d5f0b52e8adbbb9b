"""Where data and caches live: ``--data-dir``, else ``$SRNN_DATA_DIR``, else a per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV = "SRNN_DATA_DIR"
CACHE_ENV = "SRNN_CACHE_DIR"


def cache_dir() -> Path:
    """Per-user cache directory (``$SRNN_CACHE_DIR`` overrides); built data sets go here."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("srnn"))


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data directory: explicit argument, then ``$SRNN_DATA_DIR``, then the cache."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"

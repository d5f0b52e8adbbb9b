"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from srnn.errors import CheckpointError
from srnn.io import atomic_write

BEST = "best.pt"
LAST = "last.pt"




def previous_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any],
                    keep_previous: bool = False) -> None:
    """Serialise ``state`` (tensors, numbers, strings, lists, dicts) and move it into place.

    With ``keep_previous`` the file it replaces stays as ``<name>.prev.pt``; at every moment
    ``path`` holds either the old or the new checkpoint, complete.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    if keep_previous and path.is_file():
        prev = previous_path(path)
        tmp = prev.with_name(f".{prev.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)  # a second name for the old file: no copy
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, prev)
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or corrupt file raises clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError,
            IndexError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an srnn checkpoint (no 'model' entry)")
    return state

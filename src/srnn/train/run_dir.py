"""The run directory: the one place that knows the files of a run and how each is read and
written.

=================  ==========================================================================
file               content
=================  ==========================================================================
``config.json``    the :class:`~srnn.train.config.RunConfig`: data set, model, every option
``data.json``      the data card: what the samplers need of the data set (grid, modality, ...)
``metrics.jsonl``  one line per finished epoch
``results.json``   test figures of the best checkpoint; ``srnn evaluate`` merges its bounds in
``best.pt``        the checkpoint with the best validation ELBO
``last.pt``        the latest checkpoint (``last.prev.pt``: the one before it)
``.lock``          held (``flock``) by the process that writes the run, and names it
``train.log``      the log of a job of ``srnn reproduce`` / ``srnn compare``
``job.json``       the settings of such a job
``plots/``         the figures of ``srnn plot`` (its default folder)
``report/``        the HTML page of ``srnn report`` and its assets (its default folder)
``tensorboard/``   the event files of ``--tensorboard`` (:mod:`srnn.train.tensorboard`)
=================  ==========================================================================

A sweep folder of ``srnn compare`` or ``srnn reproduce`` holds such runs below it and its
``plan.json`` (:data:`PLAN`, :func:`read_plan`, :func:`write_plan`); :func:`runs_in` lists
its runs.

Every file is written atomically except ``metrics.jsonl``, which is appended to one fsynced
line at a time. **Repeated epochs**: a run resumed from a checkpoint drops the metric lines of
the epochs after it before training on (see :meth:`RunDirectory.keep_metrics_through`), so
each epoch has one line; should a file still hold an epoch twice, the reader keeps its last
line (the later run's).

**Checkpoints of a finished run**: while a run trains, ``best.pt``, ``last.pt`` and
``last.prev.pt`` each hold everything that resumes it. When it has finished (``results.json``
written), :meth:`RunDirectory.shrink_checkpoints` keeps ``best.pt``'s weights and settings
only and removes ``last.pt`` and ``last.prev.pt``; the trainer does so at the end of a run
it trained unless ``keep_checkpoints`` (not for a finished run resumed with nothing more to
train), and :func:`shrink_runs` (``srnn shrink``) for runs and sweep
folders written before. A shrunk run evaluates, samples and tunes as before, but cannot be
resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from srnn.data.card import DataCard, read_card
from srnn.errors import CheckpointError, ConfigError, DataError
from srnn.io import append_jsonl, atomic_write, write_json
from srnn.train.checkpoint import (
    BEST,
    LAST,
    RESUME_ONLY,
    load_checkpoint,
    previous_path,
    save_checkpoint,
    shrink_state,
)
from srnn.train.config import RunConfig

try:
    import fcntl
except ImportError:  # not on Windows: runs are then not locked
    fcntl = None  # type: ignore[assignment]

CONFIG = "config.json"
DATA_CARD = "data.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
LOCK = ".lock"
LOG = "train.log"
JOB = "job.json"
PLAN = "plan.json"  # a sweep folder's plan (srnn compare, srnn reproduce): its jobs, in order
PLOTS = "plots"  # srnn plot's default folder
REPORT = "report"  # srnn report's default folder
TENSORBOARD = "tensorboard"  # the event files of --tensorboard (srnn.train.tensorboard)
# What a run writes, and what --overwrite removes (nothing else in the folder is touched).
RUN_FILES = (CONFIG, DATA_CARD, METRICS, RESULTS, BEST, LAST, str(previous_path(LAST)), LOG)
CHECKPOINTS = (BEST, LAST, str(previous_path(LAST)))

DONE, STARTED, TO_DO = "done", "started", "to do"


class FolderLock:
    """An exclusive ``flock`` on ``folder/.lock`` for as long as the context lasts; the file
    names the holder (process id, host, command). The lock goes with the process that holds
    it, so a killed run leaves nothing to clean up."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "run") -> None:
        self.path = Path(folder) / LOCK
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return f"process {info['pid']} on {info['host']}: {info['command']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self.held or fcntl is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(f"{self.path.parent}: this {self.what} is being written by "
                              f"{self.holder()}; wait for it to end or stop it") from None
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "command": " ".join(sys.argv)}).encode()
        os.ftruncate(fd, 0)
        os.write(fd, me)
        self._fd = fd
        try:
            yield
        finally:
            self._fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class RunDirectory:
    """The files of one run (see the module docstring). ``writable=False`` gives a view that
    reads like the run but writes nothing (the other processes of a data-parallel run)."""

    def __init__(self, path: str | os.PathLike[str], writable: bool = True) -> None:
        self.path = Path(path)
        self.writable = writable
        self.lock = FolderLock(self.path, "run") if writable else _no_lock

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # -- state --------------------------------------------------------------------------
    def holds_config(self) -> bool:
        return self.file(CONFIG).is_file()

    def holds_run(self) -> bool:
        """Whether a run has written here (its settings, metrics, checkpoints or results)."""
        return any(self.file(n).is_file() for n in (CONFIG, METRICS, RESULTS, BEST, LAST))

    @property
    def status(self) -> str:
        """``done`` (results written), ``started`` (a checkpoint to resume) or ``to do``."""
        if self.file(RESULTS).is_file():
            return DONE
        return STARTED if self.file(LAST).is_file() else TO_DO

    def claim(self, overwrite: bool = False) -> None:
        """Make the folder ready for a new run: one that already holds a run is refused
        (``--resume`` continues it), unless ``overwrite``, which removes that run's files."""
        if not self.holds_run():
            return
        if not overwrite:
            raise ConfigError(f"{self.path} already holds a run ({self._describe()}): continue "
                              f"it with `srnn train --resume --out {self.path}`, replace it "
                              "with --overwrite, or choose another --out")
        if self.writable:
            for name in RUN_FILES:
                self.file(name).unlink(missing_ok=True)
            for folder in (PLOTS, REPORT, TENSORBOARD):  # what was made of the replaced run
                shutil.rmtree(self.file(folder), ignore_errors=True)

    def _describe(self) -> str:
        try:
            cfg = self.config()
            what = f"{cfg.model} on {cfg.dataset}"
        except (ConfigError, ValueError, KeyError, TypeError):
            what = "a run"
        epochs = len(self.metrics()) if self.file(METRICS).is_file() else 0
        return f"{what}, {epochs} epoch{'s' if epochs != 1 else ''}, {self.status}"

    # -- config.json, data.json -----------------------------------------------------------
    def config(self) -> RunConfig:
        path = self.file(CONFIG)
        if not path.is_file():
            raise ConfigError(f"{self.path}: no {CONFIG} (not a run directory)")
        try:
            return RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: not a run configuration ({e})") from e

    def config_text(self) -> str:
        """``config.json`` as written (for showing it; :meth:`config` reads it)."""
        path = self.file(CONFIG)
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{self.path}: no readable {CONFIG} ({e})") from e

    def write_config(self, cfg: RunConfig) -> None:
        if self.writable:
            write_json(self.file(CONFIG), cfg.to_dict())

    # -- job.json -------------------------------------------------------------------------
    def job(self) -> dict[str, Any]:
        """The settings of the sweep's job this run is (``{}`` for a run of ``srnn train``,
        or a ``job.json`` that is not a JSON object)."""
        try:
            job = json.loads(self.file(JOB).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return job if isinstance(job, dict) else {}

    def holds_job(self) -> bool:
        """Whether a sweep has planned a job here (started or not)."""
        return self.file(JOB).is_file()

    def write_job(self, settings: dict[str, Any]) -> None:
        if self.writable:
            write_json(self.file(JOB), settings)

    def data_card(self) -> dict[str, Any]:
        """The data card (``{}`` for a run written before cards existed)."""
        path = self.file(DATA_CARD)
        if not path.is_file():
            return {}
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConfigError(f"{path}: not JSON ({e})") from e
        if not isinstance(card, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return card

    def card(self) -> DataCard:
        """The data card, typed; a card written before grids and modalities were recorded (or
        none) takes them from the registry entry of the run's data set."""
        return read_card(self.data_card(), self.config().dataset, where=str(self.file(DATA_CARD)))

    def write_data_card(self, card: dict[str, Any]) -> None:
        if self.writable:
            write_json(self.file(DATA_CARD), card)

    # -- metrics.jsonl ------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        """The metric lines in epoch order, one per epoch (a repeated epoch: its last line);
        ``[]`` when none is written yet."""
        path = self.file(METRICS)
        if not path.is_file():
            return []
        rows: dict[int, dict[str, Any]] = {}
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[int(row["epoch"])] = row
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{path}: line {i} is not a metrics record ({e})") from e
        return [rows[k] for k in sorted(rows)]

    def append_metrics(self, line: dict[str, Any]) -> None:
        if self.writable:
            append_jsonl(self.file(METRICS), line)

    def keep_metrics_through(self, epoch: int) -> None:
        """Drop the lines of epochs after ``epoch`` (those a resumed run will redo)."""
        path = self.file(METRICS)
        if not self.writable or not path.is_file():
            return
        kept = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln)["epoch"] <= epoch]
        data = "".join(ln + "\n" for ln in kept).encode()
        atomic_write(path, lambda f: f.write(data))

    # -- results.json -------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        """The test results (``{}`` before the run has been tested)."""
        path = self.file(RESULTS)
        if not path.is_file():
            return {}
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConfigError(f"{path}: not JSON ({e})") from e
        return res if isinstance(res, dict) else {}

    def write_results(self, results: dict[str, Any]) -> None:
        if self.writable:
            write_json(self.file(RESULTS), results)

    def update_results(self, new: dict[str, Any]) -> dict[str, Any]:
        """Merge ``new`` into the results (e.g. a bound ``srnn evaluate`` computed)."""
        with self.lock():
            merged = {**self.results(), **new}
            self.write_results(merged)
        return merged

    # -- checkpoints --------------------------------------------------------------------
    def has_checkpoint(self, which: str = LAST) -> bool:
        return self.file(which).is_file()

    def load_checkpoint(self, which: str = BEST) -> dict[str, Any]:
        path = self.file(which)
        try:
            return load_checkpoint(path)
        except CheckpointError as e:
            prev = previous_path(path)
            if path.is_file() and prev.is_file():
                raise CheckpointError(f"{e}. The previous checkpoint {prev} is kept: move it "
                                      f"to {path} to resume from one epoch earlier") from e
            raise

    def save_checkpoint(self, which: str, state: dict[str, Any],
                        keep_previous: bool = False) -> None:
        if self.writable:
            save_checkpoint(self.file(which), state, keep_previous=keep_previous)

    def checkpoint_bytes(self) -> int:
        """The size of the run's checkpoints on disk, in bytes."""
        return sum(self.file(n).stat().st_size for n in CHECKPOINTS if self.file(n).is_file())

    def check_finished(self) -> None:
        """Raise a :class:`ConfigError` unless the run has finished: its results are written
        and its ``last.pt``, if any, is the state they were tested from (not a resumption
        that went on beyond them and was stopped)."""
        if self.status != DONE:
            raise ConfigError(
                f"{self.path}: the run has not finished ({self.status}, no {RESULTS}); its "
                f"checkpoints are what resumes it (`srnn train --resume --out {self.path}`), "
                "so they are kept")
        if not self.has_checkpoint(LAST):
            return
        last = self.load_checkpoint(LAST)
        tested = self.results().get("epochs")
        if last.get("partial") is not None or (tested is not None
                                               and int(last["epoch"]) != int(tested)):
            raise ConfigError(
                f"{self.path}: {LAST} is past the epochs its {RESULTS} was tested after "
                f"({tested}): a resumption of the run was stopped; finish it with "
                f"`srnn train --resume --out {self.path}` first, so its checkpoints are kept")

    def shrink_checkpoints(self) -> dict[str, Any]:
        """Keep of a finished run's checkpoints what evaluation and sampling read: ``best.pt``
        without the state that only resumes training (``optimizer``, the RNG states; see
        :func:`~srnn.train.checkpoint.shrink_state`), written atomically, and no ``last.pt``
        or ``last.prev.pt``. Refuses a run that has not finished (:meth:`check_finished`) or
        that another process writes (its lock). Returns the run and its checkpoint bytes
        before and after."""
        before = self.checkpoint_bytes()
        if self.writable:
            with self.lock():
                self.check_finished()
                if self.has_checkpoint(BEST):
                    state = self.load_checkpoint(BEST)
                    if any(k in state for k in RESUME_ONLY):
                        save_checkpoint(self.file(BEST), shrink_state(state))
                for name in reversed(CHECKPOINTS[1:]):  # last.prev.pt, then last.pt
                    self.file(name).unlink(missing_ok=True)
        return {"run": str(self.path), "bytes_before": before,
                "bytes_after": self.checkpoint_bytes()}


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def read_plan(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``plan.json`` of the sweep folder ``folder`` (``None`` without one, or where it is
    not a JSON object)."""
    try:
        plan = json.loads((Path(folder) / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) else None


def write_plan(folder: str | os.PathLike[str], plan: dict[str, Any]) -> None:
    """Write the sweep folder's ``plan.json`` (atomically)."""
    write_json(Path(folder) / PLAN, plan)


def runs_in(folder: str | os.PathLike[str], jobs: bool = False) -> list[Path]:
    """The run directories at ``folder``: ``folder`` itself if it holds a run's
    ``config.json``, else every folder below it that does (a sweep folder of ``srnn compare``
    or ``srnn reproduce``: ``jobs/<id>`` or ``<model>``), and with ``jobs`` the folders of the
    sweep's jobs not started yet (a ``job.json`` only). Hidden folders are skipped; each run
    comes once, however it is reached (:meth:`Path.resolve`). In the order of the folder's
    ``plan.json`` where it lists them (job ids, or ``srnn compare``'s models), else by path.
    ``[]`` when there is none; a ``folder`` that does not exist is a :class:`ConfigError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    if RunDirectory(folder).holds_config():
        return [folder]
    names = (CONFIG, JOB) if jobs else (CONFIG,)
    found: dict[Path, Path] = {}
    for path in sorted(p.parent for name in names for p in folder.rglob(name)):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        found.setdefault(path.resolve(), path)
    plan = read_plan(folder) or {}
    order = [str(j.get("id")) for j in plan.get("jobs", []) if isinstance(j, dict)]
    if isinstance(plan.get("models"), dict):
        order += list(plan["models"])
    rank = {name: i for i, name in enumerate(order)}
    return sorted(found.values(), key=lambda p: rank.get(p.name, len(rank)))


def shrink_runs(paths: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """``srnn shrink``: shrink the checkpoints of every run at ``paths`` (run directories or
    sweep folders, see :func:`runs_in` and :meth:`RunDirectory.shrink_checkpoints`); return
    each run's bytes before and after. A run or sweep folder reached several ways (given
    twice, spelled otherwise, or a run given with its sweep folder) is shrunk and locked once.
    All or nothing: while a sweep folder or a run is being written by another process, or
    while any run found has not finished, nothing is changed and the :class:`ConfigError`
    names them."""
    sweeps: dict[Path, Path] = {}
    found: dict[Path, Path] = {}
    for p in paths:
        runs_at = runs_in(p)
        if not runs_at:
            raise ConfigError(f"{p}: holds no run (no {CONFIG} in it or below it)")
        if runs_at != [Path(p)]:  # a sweep folder: no sweep may run in it meanwhile
            sweeps.setdefault(Path(p).resolve(), Path(p))
        for r in runs_at:
            found.setdefault(r.resolve(), r)
    runs = [RunDirectory(r) for r in found.values()]
    with ExitStack() as held:
        for folder in sweeps.values():
            held.enter_context(FolderLock(folder, "sweep")())
        for run in runs:
            held.enter_context(run.lock())
        problems = []
        for run in runs:
            try:
                run.check_finished()
            except (ConfigError, CheckpointError) as e:
                problems.append(str(e))
        if problems:
            listed = "; ".join(problems[:5])
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise ConfigError(f"nothing shrunk: {len(problems)} of {len(runs)} runs cannot be "
                              f"shrunk: {listed}{more}")
        return [run.shrink_checkpoints() for run in runs]


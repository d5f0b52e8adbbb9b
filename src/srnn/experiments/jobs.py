"""Training jobs with stable ids, run locally in worker processes or on Slurm via submitit.

A job is one training run: a data set, a model with its options, training options and a seed.
Its id is a readable label plus a hash of those settings, so the same settings always land in
the same run directory ``OUT/jobs/<id>/`` (or the job's own ``folder`` under ``OUT``, as
``srnn compare`` names them by model). Running a list of jobs skips every job whose run is done
and resumes every started one (see :class:`~srnn.train.run_dir.RunDirectory`): a sweep that
was interrupted (Ctrl-C, a reboot, a cancelled cluster job) continues where it stopped. While a
sweep runs, its process holds the output folder's lock (:func:`sweep_folder`).

Backends: ``local`` runs up to ``workers`` jobs at once, each in a fresh spawned process;
``slurm`` submits them as a Slurm job array through ``submitit`` (``pip install srnn[slurm]``);
``submitit-local`` uses submitit's local executor (subprocesses on this machine), which checks
the submitit path without a cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srnn.data.download import check_available
from srnn.errors import ConfigError
from srnn.progress import default_enabled, progress_bar
from srnn.train.run_dir import LOG, PLAN, FolderLock, RunDirectory, read_plan

log = logging.getLogger("srnn.jobs")

BACKENDS = ("local", "slurm", "submitit-local")
# Stopping rules of the machine, and what is kept on disk, rather than settings of the
# experiment: extending them resumes a job instead of starting a new one.
NOT_IN_ID = frozenset({"max_minutes", "keep_checkpoints"})


@dataclass(frozen=True)
class Job:
    """One training run. ``label`` is the readable part of the id (e.g. ``jsb-z100-d300``);
    ``meta`` holds the columns the experiment tabulates (protocol, set, variant, ...)."""

    label: str
    dataset: str
    model: str = "srnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None  # the run directory under OUT (default: jobs/<id>)

    def run_dir(self, out: str | os.PathLike[str]) -> Path:
        return Path(out) / (self.folder or f"jobs/{self.id}")

    def settings(self) -> dict[str, Any]:
        """What the job computes: everything that enters its id."""
        return {"dataset": self.dataset, "model": self.model,
                "model_options": self.model_options,
                "train_options": {k: v for k, v in self.train_options.items()
                                  if k not in NOT_IN_ID},
                "seed": self.seed}

    @property
    def id(self) -> str:
        blob = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"{self.label}-s{self.seed}-{digest}"


def job_status(job: Job, out: str | os.PathLike[str]) -> str:
    """``done`` (results written), ``started`` (a checkpoint to resume) or ``to do``."""
    return RunDirectory(job.run_dir(out)).status


@contextmanager
def sweep_folder(out: str | os.PathLike[str], what: str, plan: dict[str, Any]
                 ) -> Iterator[Path]:
    """Hold the lock of the sweep folder ``out`` (a second sweep into it is refused, naming
    this process) and refuse a folder whose ``plan.json`` is another sweep's: the plan's
    entries named in ``plan`` (e.g. the experiment, or the data set) must agree."""
    out = Path(out)
    with FolderLock(out, what)():
        if (out / PLAN).is_file():
            saved = read_plan(out) or {}
            differ = {k: saved[k] for k, v in plan.items() if k in saved and saved[k] != v}
            if differ:
                theirs = ", ".join(f"{k} {v!r}" for k, v in differ.items())
                raise ConfigError(f"{out} holds another {what} ({theirs}); choose another "
                                  "--out")
        yield out


@dataclass(frozen=True)
class JobRun:
    """What a worker process needs to train one job: model, data set, run directory,
    options, data directory, threads."""

    model: str
    dataset: str
    run_dir: str
    model_options: dict[str, Any]
    train_options: dict[str, Any]
    data_dir: str | None
    threads: int
    # After training, the test split under each (bound, particles), ``iwae`` or ``fivo``,
    # into results.json as ``srnn evaluate --bound B --samples K`` writes it; not in the id.
    bounds: tuple[tuple[str, int], ...] = ()
    # Keep the job's resumable checkpoints once it has finished (``srnn train
    # --keep-checkpoints``); not in the id.
    keep_checkpoints: bool = False
    # What is logged of the job's training (srnn.train.config.LOG_OPTIONS: ``tensorboard``,
    # ``tensorboard_every``), on top of its training options; not in the id.
    log_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, job: Job, out: str | os.PathLike[str], data_dir: str | None,
           threads: int, bounds: tuple[tuple[str, int], ...] = (),
           keep_checkpoints: bool = False,
           log_options: dict[str, Any] | None = None) -> JobRun:
        return cls(job.model, job.dataset, str(job.run_dir(out)), job.model_options,
                   {**job.train_options, "seed": job.seed}, data_dir, threads, tuple(bounds),
                   keep_checkpoints, dict(log_options or {}))


def missing_bounds(results: dict[str, Any], bounds: tuple[tuple[str, int], ...]
                   ) -> list[tuple[str, int]]:
    """The (bound, particles) of ``bounds`` that ``results`` (a results.json) lacks."""
    from srnn.evaluate import bound_key

    return [(b, k) for b, k in bounds if f"{bound_key(b, k)}_per_step" not in results]


def evaluate_bounds(run_dir: str | os.PathLike[str], bounds: list[tuple[str, int]],
                data_dir: str | None) -> dict[str, Any]:
    """Test the trained run in ``run_dir`` under each (bound, particles) (seed 0) and merge the
    figures into its results; returns the merged results."""
    from srnn.evaluate import evaluate_particle_bound
    from srnn.train.trainer import load_trained

    run = RunDirectory(run_dir)
    model, _, data = load_trained(run_dir, data_dir=data_dir)
    split = data.split("test")
    merged = run.results()
    for bound, samples in bounds:
        log.info("%s: test %s with %d particles", run_dir, bound, samples)
        res = evaluate_particle_bound(model, split, bound, samples, seed=0)
        merged = run.update_results(res)
    return merged


@default_enabled(False)  # no progress bars inside a job (the Bach build, its bounds)
def run_training_job(run: JobRun) -> dict[str, Any]:
    """Train one job into its run directory (resuming a checkpoint there) and return its
    results; the log goes to ``train.log`` there, and no progress bar is drawn (the sweep
    draws one of its jobs). Errors are returned, not raised, so that the other jobs of a sweep
    go on."""
    import torch

    from srnn.sampling import sample_media
    from srnn.train.trainer import train

    torch.set_num_threads(run.threads)
    torch.set_flush_denormal(True)
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    # Given only when on: a resumed job keeps the setting it started with otherwise.
    keep = {"keep_checkpoints": True} if run.keep_checkpoints else {}
    try:
        done = RunDirectory(run_dir)
        res = (done.results() if done.status == "done" else
               train(run.dataset, run_dir, model=run.model, data_dir=run.data_dir, resume=True,
                     progress=False, model_options=run.model_options, media=sample_media,
                     **{**run.train_options, **keep, **run.log_options}))
        todo = missing_bounds(res, run.bounds)
        return evaluate_bounds(run_dir, todo, run.data_dir) if todo else res
    except Exception as e:
        log.error("%s failed:\n%s", run_dir, traceback.format_exc())
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def run_jobs(jobs: list[Job], out: str | Path, workers: int = 1, backend: str = "local",
             threads: int = 1, data_dir: str | os.PathLike[str] | None = None,
             slurm: dict[str, Any] | None = None,
             bounds: tuple[tuple[str, int], ...] = (),
             keep_checkpoints: bool = False, log_options: dict[str, Any] | None = None,
             progress: bool | None = None) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` into their run directories under ``out``; return each job's results (or
    ``{"error": ...}``) by id. Finished jobs are read back, not rerun (only tested under the
    ``bounds`` their results lack, see :class:`JobRun`); interrupted ones resume. A job that
    finishes keeps ``best.pt``'s weights and settings only, unless ``keep_checkpoints``. Named
    sets that the data directory lacks are one :class:`~srnn.errors.DataError`, before any job
    runs, giving the ``srnn data download`` command that fetches them. ``log_options``
    (``{"tensorboard": True}``, see :class:`JobRun`) go to each job's training; ``progress``:
    the bar of jobs finished (:func:`srnn.progress.progress_bar`)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    if log_options and log_options.get("tensorboard"):
        from srnn.train.tensorboard import require

        require()  # before any job starts
    ids = [j.id for j in jobs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"two jobs with the same settings: {', '.join(dup)}")
    results: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    for job in jobs:
        run = RunDirectory(job.run_dir(out))
        run.write_job({"id": job.id, "label": job.label, **job.settings(), "meta": job.meta})
        done = run.results() if run.status == "done" else None
        if done is not None and not missing_bounds(done, bounds):
            results[job.id] = done
        else:
            todo.append(job)
    log.info("%d jobs: %d finished, %d to run (%s backend, %d at once)", len(jobs),
             len(jobs) - len(todo), len(todo), backend, workers)
    if not todo:
        return results
    # A named set missing from the data directory: one error giving the command that fetches
    # all of them, before any job starts.
    check_available([j.dataset for j in todo], data_dir)
    data = str(data_dir) if data_dir else None
    args = {j.id: JobRun.of(j, out, data, threads, bounds, keep_checkpoints, log_options)
            for j in todo}
    with progress_bar(desc="jobs", total=len(jobs), initial=len(jobs) - len(todo), unit="job",
                      enabled=progress) as bar:
        def finished() -> None:  # a job has ended
            bar.update(1)

        if backend == "local":
            results.update(run_local(args, workers, finished))
        else:
            results.update(_run_submitit(args, Path(out) / "submitit", backend, workers,
                                         threads, slurm or {}, finished))
    return results


def _nothing() -> None:
    """Do nothing (a job has ended, and nobody asked to hear of it)."""


def run_local(args: dict[str, JobRun], workers: int,
              finished: Callable[[], None] = _nothing) -> dict[str, dict[str, Any]]:
    """Run :func:`run_training_job` on each job, ``workers`` at once (each in a fresh spawned
    process; in this process when ``workers`` is 1); ``finished()`` as each job ends."""
    results: dict[str, dict[str, Any]] = {}
    if not args:
        return results
    if workers <= 1:
        for job_id, a in args.items():
            log.info("%s: training", job_id)
            results[job_id] = run_training_job(a)
            finished()
        return results
    # A fresh process per job; on an interrupt or SIGTERM the workers are terminated with the
    # parent (their last checkpoints let the next call resume them).
    pool = mp.get_context("spawn").Pool(min(workers, len(args)), maxtasksperchild=1)
    try:
        pending = {job_id: pool.apply_async(run_training_job, (a,),
                                            callback=lambda _: finished(),
                                            error_callback=lambda _: finished())
                   for job_id, a in args.items()}
        pool.close()
        for job_id, res in pending.items():
            results[job_id] = res.get()
            log.info("%s: %s", job_id, results[job_id].get("error", "done"))
        pool.join()
    finally:
        pool.terminate()
    return results


def _run_submitit(args: dict[str, JobRun], folder: Path, backend: str, workers: int,
                  threads: int, slurm: dict[str, Any],
                  finished: Callable[[], None] = _nothing) -> dict[str, dict[str, Any]]:
    try:
        import submitit
    except ImportError as e:
        raise ConfigError(f"the {backend} backend needs submitit: pip install 'srnn[slurm]'"
                          ) from e
    if backend == "slurm":
        try:
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        except RuntimeError as e:  # no srun / sbatch here
            raise ConfigError(f"the slurm backend needs a Slurm cluster: {e}") from e
        params = {"timeout_min": 24 * 60, "cpus_per_task": threads,
                  "slurm_array_parallelism": workers, **slurm}
    else:
        executor = submitit.LocalExecutor(folder=folder / "%j")
        params = {"timeout_min": 24 * 60, **slurm}
    try:
        executor.update_parameters(**params)
    except (TypeError, ValueError) as e:  # an unknown or ill-typed --slurm parameter
        raise ConfigError(f"--slurm: {e}") from e
    results: dict[str, dict[str, Any]] = {}
    ids = list(args)
    # Slurm: one job array (the cluster runs `workers` at once); the local executor starts
    # every job it is given at once, so it gets `workers` at a time.
    waves = [ids] if backend == "slurm" else [ids[i : i + max(workers, 1)]
                                              for i in range(0, len(ids), max(workers, 1))]
    for wave in waves:
        results.update(_submit_wave(executor, {i: args[i] for i in wave}, finished))
    return results


def _submit_wave(executor: Any, args: dict[str, JobRun],
                 finished: Callable[[], None] = _nothing) -> dict[str, dict[str, Any]]:
    with executor.batch():
        submitted = {job_id: executor.submit(run_training_job, a)
                     for job_id, a in args.items()}
    results: dict[str, dict[str, Any]] = {}
    for job_id, sj in submitted.items():
        try:
            res = sj.result()
        except Exception as e:  # the cluster job itself failed (time limit, node failure)
            res = {"error": f"{type(e).__name__}: {e}"}
        # Read the run's own results file rather than trusting the transport.
        run = RunDirectory(args[job_id].run_dir)
        results[job_id] = run.results() if run.status == "done" else res
        log.info("%s: %s", job_id, results[job_id].get("error", "done"))
        finished()
    return results

"""What the dataset generators (``water2d``, ``cloth``, ``flow2d``) share: the generation driver.

- ``Replayer`` / ``NotResimulable``: a solver restarted from a counterfactual scenario;
- ``SPLITS``: the split names; a split's index in it (``split_id``) is part of every random stream;
- ``GeneratorConfig``: ``split_sizes`` and ``to_dict`` of a generator's config dataclass, and the
  checks its ``_validate_config`` is made of (``config_error``, ``check_at_least``,
  ``check_positive``);
- ``run_jobs`` / ``run_batches``: worker jobs run in a pool of spawned processes (or in this one)
  under a progress bar, results yielded in job order;
- ``write_splits``: ``<split>.h5`` for every split, streamed from those results;
- ``package_version``: an installed package's version, for the provenance record;
- ``init_taichi``: the deterministic Taichi runtime of the Taichi solvers (``water2d``, ``cloth``);
- ``generator_parser`` / ``generator_config`` / ``print_generation``: the command line of
  ``python -m gns.solvers.<name>``.

Nothing here changes a generated array: jobs are run and written in the same order whatever the
number of workers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping, Sequence, TypeVar

from gns.errors import GnsInputError
from gns.progress import no_bar

SPLITS = ("train", "valid", "test")  # split_id = index in this tuple (part of every random stream)

Job = TypeVar("Job")
Result = TypeVar("Result")
Trajectory = TypeVar("Trajectory")


# ---------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------


class GeneratorConfig:
    """Mixin of a generator's config dataclass with ``num_train``, ``num_valid`` and ``num_test``."""

    num_train: int
    num_valid: int
    num_test: int

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "valid": self.num_valid, "test": self.num_test}

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def config_error(config: object, key: str, expected: str, found: object) -> GnsInputError:
    """The error for an invalid field of a config: ``invalid <ConfigClass>``, naming the key."""
    return GnsInputError(f"invalid {type(config).__name__}", key=key, expected=expected, found=found)


def check_at_least(config: object, keys: Iterable[str], minimum: int) -> None:
    """Raise ``config_error`` (expected ``>= minimum``) for the first of ``keys`` below ``minimum``."""
    for key in keys:
        if getattr(config, key) < minimum:
            raise config_error(config, key, f">= {minimum}", getattr(config, key))


def check_positive(config: object, keys: Iterable[str]) -> None:
    """Raise ``config_error`` (expected ``> 0``) for the first of ``keys`` that is not positive."""
    for key in keys:
        if not getattr(config, key) > 0:
            raise config_error(config, key, "> 0", getattr(config, key))


# ---------------------------------------------------------------------------------------------------
# Running jobs
# ---------------------------------------------------------------------------------------------------


# Thread-count variables of the BLAS / OpenMP runtimes numpy and scipy may load. They must be set
# before numpy loads, so workers get them in their environment at spawn.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes started inside this block see one BLAS/OpenMP thread; the environment is restored."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_jobs(worker: Callable[[Job], Result], jobs: Sequence[Job], *, num_workers: int, in_process: bool,
             desc: str, unit: str, progress: bool, total: int | None = None,
             count: Callable[[Result], int] | None = None,
             single_threaded: bool = False) -> Generator[Result, None, None]:
    """Yield ``worker(job)`` for every job, in job order.

    Args:
        worker: a module-level function (it is pickled to the workers).
        jobs: its arguments.
        num_workers: worker processes (spawned: each starts clean, with no forked solver state);
            never more than there are jobs.
        in_process: run every job in this process instead (``num_workers`` is then unused).
        desc, unit, progress: the tqdm bar (``progress=False`` hides it).
        total, count: the bar's length, and what one result adds to it (default: the number of
            jobs, one per result).
        single_threaded: start the workers with one BLAS/OpenMP thread each.

    Closing the generator stops the worker pool.
    """
    from tqdm.auto import tqdm

    with tqdm(total=len(jobs) if total is None else total, desc=desc, unit=unit, disable=no_bar(progress)) as bar:
        if in_process:
            for job in jobs:
                result = worker(job)
                bar.update(1 if count is None else count(result))
                yield result
            return
        context = multiprocessing.get_context("spawn")
        with single_threaded_children() if single_threaded else contextlib.nullcontext():
            pool = context.Pool(max(1, min(num_workers, len(jobs))))  # workers start here
        with pool:
            for result in pool.imap(worker, jobs):
                bar.update(1 if count is None else count(result))
                yield result


def batch_tasks(config: Any, batch_size: int) -> list[tuple[Any, int, tuple[int, ...]]]:
    """``(config, split_id, indices)`` batches of at most ``batch_size`` trajectories, split by split,
    in the order they are written."""
    tasks = []
    for split_id, split in enumerate(SPLITS):
        size = config.split_sizes[split]
        for start in range(0, size, batch_size):
            tasks.append((config, split_id, tuple(range(start, min(start + batch_size, size)))))
    return tasks


def run_batches(worker: Callable[[Any], list[Result]], tasks: Sequence[tuple[Any, int, tuple[int, ...]]], *,
                num_workers: int, desc: str, progress: bool) -> Generator[tuple[int, Result], None, None]:
    """Yield ``(split_id, result)`` for every trajectory of the ``batch_tasks`` tasks, in task order.

    ``worker(task)`` returns one result per index of the task. Tasks run in a pool of
    ``num_workers`` spawned processes, or in this process when there is at most one worker or one
    task. Closing the generator stops the pool.
    """
    results = run_jobs(worker, tasks, num_workers=num_workers, in_process=not (num_workers > 1 and len(tasks) > 1),
                       desc=desc, unit="traj", progress=progress,
                       total=sum(len(indices) for _, _, indices in tasks), count=len)
    with contextlib.closing(results):
        for (_, split_id, _), batch in zip(tasks, results):
            for result in batch:
                yield split_id, result


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def write_splits(out_dir: Path, split_sizes: Mapping[str, int],
                 results: Generator[tuple[int, Result], None, None],
                 to_trajectory: Callable[[str, Result], Trajectory],
                 write: Callable[[Path, Iterator[Trajectory]], object]) -> None:
    """Write ``<out_dir>/<split>.h5`` for every split, streaming trajectories from ``results``.

    Args:
        out_dir: the dataset directory.
        split_sizes: trajectories per split; ``results`` yields exactly that many, split by split.
        results: ``(split_id, result)`` in split order (e.g. from ``run_batches``); it is closed at
            the end, which stops a worker pool, also when a write failed.
        to_trajectory: ``to_trajectory(split, result)``, the trajectory to write for one result
            (called in order, as the split is written).
        write: ``write(path, trajectories)`` writes one split file. It is not called for an
            empty split, whose file is deleted instead: a stale split from another config would
            mislead.
    """

    def split_trajectories(split: str) -> Iterator[Trajectory]:
        for _ in range(split_sizes[split]):
            split_id, result = next(results)
            assert SPLITS[split_id] == split, "results are produced in split order"
            yield to_trajectory(split, result)

    try:
        for split in SPLITS:
            path = out_dir / f"{split}.h5"
            if split_sizes[split] > 0:
                write(path, split_trajectories(split))
            else:
                path.unlink(missing_ok=True)
    finally:
        results.close()  # stops the worker pool, also when a write failed


def package_version(name: str) -> str:
    """The installed version of a distribution package, or ``"unknown"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


# ---------------------------------------------------------------------------------------------------
# Taichi
# ---------------------------------------------------------------------------------------------------


def import_taichi(solver: str):
    """Import Taichi (the optional dependency) without its start-up banner; ``solver`` names who
    needs it in the error."""
    os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "False")
    try:
        import taichi as ti
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f'The {solver} solver needs Taichi: pip install "gns[solvers]"') from error
    return ti


_TAICHI_RUNTIME = 0  # counts init_taichi calls: a solver built before the last one holds freed fields


def taichi_runtime() -> int:
    """Which Taichi runtime is live; a cached solver built under another one must be rebuilt."""
    return _TAICHI_RUNTIME


def init_taichi(solver: str, fp64: bool = True):
    """Import Taichi and start this process's runtime, deterministic: one CPU thread (atomics and
    force sums in a fixed order), no fast-math (no compiler reassociation of float sums, so a
    scene's result cannot depend on the field sizes a kernel was compiled for), ``default_fp``
    f64 (``fp64``) or f32. Returns the ``taichi`` module.

    Starting a runtime frees every field of the previous one: the solvers check
    :func:`taichi_runtime` before reusing a cached solver (water, then cloth, then water again).
    """
    global _TAICHI_RUNTIME
    ti = import_taichi(solver)
    _TAICHI_RUNTIME += 1
    with contextlib.redirect_stdout(io.StringIO()):  # "[Taichi] Starting on arch=x64"
        # random_seed is fixed: no Taichi randomness is used (initial states come from numpy).
        ti.init(arch=ti.cpu, cpu_max_num_threads=1, random_seed=0, default_fp=ti.f64 if fp64 else ti.f32,
                fast_math=False, log_level=ti.WARN)
    return ti


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def generator_parser(description: str, config_cls: type, *,
                     workers_help: str | None = None) -> argparse.ArgumentParser:
    """The options every generator takes: ``--out DIR [--seed S] [--small] [--workers W]``
    (see ``generator_config``); a generator may add its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, help="dataset directory to write")
    parser.add_argument("--seed", type=int, default=config_cls.seed)
    parser.add_argument("--small", action="store_true", help="a tiny smoke-test dataset")
    parser.add_argument("--workers", type=int, default=None, help=workers_help)
    return parser


def generator_config(config_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The config a ``generator_parser`` command line asks for: ``config_cls.small`` with
    ``--small``, ``--seed``, ``--workers`` when given (else the config's own worker count), and
    ``overrides``."""
    overrides["seed"] = args.seed
    if args.workers is not None:
        overrides["num_workers"] = args.workers
    return (config_cls.small if args.small else config_cls)(**overrides)


def print_generation(out: Path, generator: Mapping[str, Any], validation: Mapping[str, Any]) -> None:
    """What a generator's command line prints once the dataset is written."""
    print(f"wrote {out} in {generator['generation_seconds']:.1f} s")
    print(json.dumps(validation, indent=2))


# ------------------------------------------------------------------------------ counterfactual replays


class NotResimulable(Exception):
    """A reference solver cannot replay an intervention (the message says which and why)."""


class Replayer:
    """Base of a reference solver's replay of counterfactual scenarios (``gns/solvers``).

    A subclass holds the solver's full state of one trajectory at the start frame
    (:meth:`start_state`), applies each :class:`gns.interventions.Resolved` intervention (a
    scenario's ``log``) to a copy of it with the
    solver's own semantics (:meth:`apply`, raising :class:`NotResimulable` for what it cannot
    do), may check the result (:meth:`check`) and simulates every replayable scenario on
    (:meth:`simulate`). :meth:`prepare` does all but the simulation, so that a query checks
    every scenario before anything rolls out.
    """

    def start_state(self, steps: int) -> Any:
        """A fresh copy of the solver's state at the start frame, ready for ``steps`` steps."""
        raise NotImplementedError

    def apply(self, state: Any, record: Any) -> Any:
        raise NotImplementedError

    def check(self, state: Any, name: str) -> None:
        """Raise :class:`GnsInputError` when the solver cannot start from the intervened ``state`` of scenario
        ``name`` (nothing to check by default)."""

    def simulate(self, states: Mapping[str, Any], steps: int) -> dict[str, dict[str, Any]]:
        """Field -> ``(N, steps, F)`` tensors of every state's future (the start frame excluded)."""
        raise NotImplementedError

    def prepare(self, scenarios: Mapping[str, Any], steps: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The solver's intervened (and checked) state of every scenario it can replay, and why not for the others.

        Raises:
            GnsInputError: a scenario the solver cannot start from (:meth:`check`).
        """
        states, notes = {}, {}
        for name, scenario in scenarios.items():
            try:
                state = self.start_state(steps)
                for record in scenario.log:
                    state = self.apply(state, record)
            except NotResimulable as reason:
                notes[name] = str(reason)
                continue
            self.check(state, name)
            states[name] = state
        return states, notes

    def resimulate(self, scenarios: Mapping[str, Any], steps: int) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Field -> ``(N, steps, F)`` futures of every scenario the solver can replay, and why not for the others."""
        states, notes = self.prepare(scenarios, steps)
        return (self.simulate(states, steps) if states else {}), notes

"""The canonical on-disk format: one HDF5 file per split, one group per trajectory.

Layout (LagrangeBench's, extended with optional context)::

    <dataset>/metadata.json
    <dataset>/{train,valid,test}.h5
        /00000/position        float32 (T, N, D)
        /00000/particle_type   int     (N,)
        /00000/context         float32 (G,)     optional, per-trajectory globals
        /00000/step_context    float32 (T, S)   optional, per-step globals
        /00001/...

``TrajectorySplit`` reads lazily: it keeps the file open and reads one trajectory, or one time
window of one trajectory, at a time, so datasets larger than memory train fine. Positions are
chunked along time, so a window touches only the chunks it needs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Iterable, Iterator, TypeVar

import h5py
import numpy as np

from gns.atomic import atomic_path
from gns.data.metadata import METADATA_FILE, DatasetMetadata, load_metadata
from gns.errors import GnsInputError

SPLITS = ("train", "valid", "test")
H5_SUFFIX = ".h5"
# Frames per HDF5 chunk: a training window (typically 7 frames) then touches one or two chunks.
TIME_CHUNK = 16
# Per-file chunk cache: big enough that consecutive windows of one trajectory reuse chunks.
_CHUNK_CACHE_BYTES = 16 * 2**20

_Item = TypeVar("_Item")  # what indexing a split returns
_Split = TypeVar("_Split", bound="LazyH5Split")


@dataclass(eq=False)
class Trajectory:
    """One simulated trajectory, in memory.

    Attributes:
        position: ``(T, N, D)`` float32 particle positions.
        particle_type: ``(N,)`` int64 particle types.
        context: ``(G,)`` float32 per-trajectory globals (e.g. material parameters), or None.
        step_context: ``(T, S)`` float32 per-step globals, or None.
        key: the trajectory's name in its source file (e.g. ``"00003"``), or None.
    """

    position: np.ndarray
    particle_type: np.ndarray
    context: np.ndarray | None = None
    step_context: np.ndarray | None = None
    key: str | None = None

    @property
    def sequence_length(self) -> int:
        """Number of frames T."""
        return int(self.position.shape[0])

    @property
    def num_particles(self) -> int:
        """Number of particles N."""
        return int(self.position.shape[1])


# ============================================================================ validation
def check_position_layout(shape: tuple[int, ...], dtype: np.dtype, dim: int | None, *,
                          file: object, key: str) -> None:
    """Check that a position array is ``(T, N, D)`` floating point with ``D == dim``."""
    if len(shape) != 3:
        raise GnsInputError("position must be a 3-D array (time, particle, dimension)", file=file,
                            key=key, expected="shape (T, N, D)", found=f"shape {tuple(shape)}")
    if np.dtype(dtype).kind != "f":
        raise GnsInputError("position must be floating point", file=file, key=key,
                            expected="float32", found=np.dtype(dtype).name)
    if dim is not None and shape[2] != dim:
        raise GnsInputError(f"position has the wrong spatial dimension (metadata dim={dim})",
                            file=file, key=key, expected=f"last axis {dim}",
                            found=f"shape {tuple(shape)}")
    if shape[0] < 1 or shape[1] < 1:
        raise GnsInputError("position needs at least one frame and one particle", file=file,
                            key=key, expected="T >= 1 and N >= 1", found=f"shape {tuple(shape)}")


def check_particle_type_layout(shape: tuple[int, ...], dtype: np.dtype, num_particles: int, *,
                               file: object, key: str) -> None:
    """Check that particle types are an ``(N,)`` integer array."""
    if np.dtype(dtype).kind not in "iu":
        raise GnsInputError("particle_type must be integer", file=file, key=key,
                            expected="int64", found=np.dtype(dtype).name)
    if tuple(shape) != (num_particles,):
        raise GnsInputError("particle_type needs one entry per particle", file=file, key=key,
                            expected=f"shape ({num_particles},)", found=f"shape {tuple(shape)}")


def check_context_layout(shape: tuple[int, ...], dtype: np.dtype, size: int, *, file: object,
                         key: str) -> None:
    """Check a per-trajectory context: ``(G,)`` float, ``G == size`` when size > 0."""
    if np.dtype(dtype).kind not in "fiu" or len(shape) != 1:
        raise GnsInputError("context must be a 1-D numeric array", file=file, key=key,
                            expected="float32 (G,)", found=f"{np.dtype(dtype).name} {tuple(shape)}")
    if size and shape[0] != size:
        raise GnsInputError("context length differs from metadata context_size", file=file,
                            key=key, expected=f"({size},)", found=f"{tuple(shape)}")


def check_step_context_layout(shape: tuple[int, ...], dtype: np.dtype, num_frames: int,
                              size: int, *, file: object, key: str) -> None:
    """Check per-step context: ``(T, S)`` float, ``S == size`` when size > 0."""
    expected = f"({num_frames}, {size or 'S'})"
    if np.dtype(dtype).kind not in "fiu" or len(shape) != 2 or shape[0] != num_frames:
        raise GnsInputError("step_context must be a (T, S) numeric array", file=file, key=key,
                            expected=expected, found=f"{np.dtype(dtype).name} {tuple(shape)}")
    if size and shape[1] != size:
        raise GnsInputError("step_context width differs from metadata step_context_size",
                            file=file, key=key, expected=expected, found=f"{tuple(shape)}")


def check_finite(values: np.ndarray, *, file: object, key: str, time_offset: int = 0) -> None:
    """Raise on the first NaN or inf, naming its time index (and particle for positions).

    Args:
        values: ``(T, ...)`` array; axis 0 is time, axis 1 (if any) the particle or component.
        time_offset: frame index of ``values[0]`` in the whole trajectory (for windows).
    """
    finite = np.isfinite(values)
    if finite.all():
        return
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    where = f"time index {first[0] + time_offset}"
    if len(first) > 1:
        where += f", {'particle' if key.endswith('position') else 'component'} {first[1]}"
    raise GnsInputError(f"non-finite value at {where}", file=file, key=key,
                        expected="finite values", found=values[first])


def validate_trajectory(traj: Trajectory, *, dim: int | None = None, context_size: int = 0,
                        step_context_size: int = 0, file: object = None,
                        name: str | None = None) -> Trajectory:
    """Check an in-memory trajectory and return it with canonical dtypes.

    Args:
        traj: the trajectory to check.
        dim: required spatial dimension, or None to accept any.
        context_size, step_context_size: required sizes when positive.
        file, name: where the trajectory comes from or goes to, for error messages.

    Returns:
        A new ``Trajectory`` with float32 positions/contexts and int64 particle types.

    Raises:
        GnsInputError: bad shape, dtype or a non-finite value.
    """
    name = name or traj.key or "trajectory"
    position = np.asarray(traj.position)
    particle_type = np.asarray(traj.particle_type)
    check_position_layout(position.shape, position.dtype, dim, file=file, key=f"{name}/position")
    num_frames, num_particles, _ = position.shape
    check_particle_type_layout(particle_type.shape, particle_type.dtype, num_particles,
                               file=file, key=f"{name}/particle_type")
    position = position.astype(np.float32, copy=False)
    check_finite(position, file=file, key=f"{name}/position")
    context = step_context = None
    if traj.context is not None:
        context = np.asarray(traj.context)
        check_context_layout(context.shape, context.dtype, context_size, file=file,
                             key=f"{name}/context")
        context = context.astype(np.float32, copy=False)
        check_finite(context[None], file=file, key=f"{name}/context")
    if traj.step_context is not None:
        step_context = np.asarray(traj.step_context)
        check_step_context_layout(step_context.shape, step_context.dtype, num_frames,
                                  step_context_size, file=file, key=f"{name}/step_context")
        step_context = step_context.astype(np.float32, copy=False)
        check_finite(step_context, file=file, key=f"{name}/step_context")
    return Trajectory(position, particle_type.astype(np.int64, copy=False), context,
                      step_context, traj.key)


# ============================================================================ reading
class LazyH5Split(Generic[_Item]):
    """Base of the lazy, random-access views of one split file (``train.h5`` etc.).

    Keeps the file open between reads, but pickles as just its path, metadata and group names
    and reopens the file on first use in each process, so DataLoader workers (fork or spawn)
    each get their own handle. Subclasses implement ``__getitem__`` and keep whatever they
    cache per trajectory in attributes set by ``_reset_cache``.
    """

    def __init__(self, path: str | os.PathLike, metadata: Any = None) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._reset_cache()
        self._keys = [name for name, item in self._h5().items() if isinstance(item, h5py.Group)]

    def _reset_cache(self) -> None:
        """Forget what was cached per trajectory (on construction and after unpickling)."""

    # ------------------------------------------------------------------ file handle
    def _h5(self) -> h5py.File:
        """The open file, (re)opened after unpickling or in a forked child process."""
        if self._file is None or self._pid != os.getpid():
            # A handle inherited through fork is left alone: closing it could disturb the parent.
            try:
                self._file = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
            except OSError as exc:
                raise GnsInputError(f"cannot open as HDF5: {exc}", file=self.path) from None
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close the file handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self: _Split) -> _Split:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "metadata": self.metadata, "keys": self._keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.metadata, self._keys = state["path"], state["metadata"], state["keys"]
        self._file, self._pid = None, None
        self._reset_cache()

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}', {len(self)} trajectories)"

    # ------------------------------------------------------------------ indexing
    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """Group names of the trajectories, in file order."""
        return list(self._keys)

    def __getitem__(self, i: int) -> _Item:
        raise NotImplementedError

    def __iter__(self) -> Iterator[_Item]:
        for i in range(len(self)):
            yield self[i]

    def _index(self, i: int) -> int:
        n = len(self._keys)
        if not -n <= i < n:
            raise IndexError(f"trajectory index {i} out of range for {n} trajectories in {self.path}")
        return i % n

    def _check_window(self, start: int, stop: int, num_frames: int, key: str) -> None:
        if not 0 <= start < stop <= num_frames:
            raise IndexError(f"window [{start}, {stop}) is outside the {num_frames} frames of "
                             f"'{key}' in {self.path}")


class TrajectorySplit(LazyH5Split[Trajectory]):
    """Lazy, random-access view of one split file (``train.h5`` etc.).

    The file handle stays open between reads, but the object pickles as just its path and
    metadata and reopens the file on first use in each process, so DataLoader workers (fork or
    spawn) each get their own handle. Each trajectory's structure is validated on first access;
    finiteness is checked on whatever is read (a whole trajectory or a window).
    """

    metadata: DatasetMetadata | None

    def __init__(self, path: str | os.PathLike, metadata: DatasetMetadata | None = None) -> None:
        super().__init__(path, metadata)

    def _reset_cache(self) -> None:
        self._checked: set[int] = set()
        self._particle_types: dict[int, np.ndarray] = {}

    def _group(self, i: int) -> tuple[int, h5py.Group]:
        """Index in range and its validated group."""
        i = self._index(i)
        group = self._h5()[self._keys[i]]
        if i not in self._checked:
            self._check_group(group, self._keys[i])
            self._checked.add(i)
        return i, group

    def _check_group(self, group: h5py.Group, key: str) -> None:
        meta = self.metadata
        for name in ("position", "particle_type"):
            if not isinstance(group.get(name), h5py.Dataset):
                raise GnsInputError("trajectory group lacks a dataset", file=self.path,
                                    key=f"{key}/{name}", expected=f"dataset '{name}'",
                                    found=sorted(group.keys()))
        pos, ptype = group["position"], group["particle_type"]
        check_position_layout(pos.shape, pos.dtype, meta.dim if meta else None, file=self.path,
                              key=f"{key}/position")
        check_particle_type_layout(ptype.shape, ptype.dtype, pos.shape[1], file=self.path,
                                   key=f"{key}/particle_type")
        context_size = meta.context_size if meta else 0
        step_context_size = meta.step_context_size if meta else 0
        for name, size in (("context", context_size), ("step_context", step_context_size)):
            if size and name not in group:
                raise GnsInputError(f"metadata declares {name}_size={size} but the trajectory "
                                    f"has no {name}", file=self.path, key=f"{key}/{name}")
        if "context" in group:
            ctx = group["context"]
            check_context_layout(ctx.shape, ctx.dtype, context_size, file=self.path,
                                 key=f"{key}/context")
            check_finite(ctx[()][None], file=self.path, key=f"{key}/context")
        if "step_context" in group:
            sc = group["step_context"]
            check_step_context_layout(sc.shape, sc.dtype, pos.shape[0], step_context_size,
                                      file=self.path, key=f"{key}/step_context")

    # ------------------------------------------------------------------ reads
    def sequence_length(self, i: int) -> int:
        """Number of frames T of trajectory ``i`` (no data is read)."""
        return int(self._group(i)[1]["position"].shape[0])

    def num_particles(self, i: int) -> int:
        """Number of particles N of trajectory ``i`` (no data is read)."""
        return int(self._group(i)[1]["position"].shape[1])

    def particle_type(self, i: int) -> np.ndarray:
        """``(N,)`` int64 particle types of trajectory ``i`` (cached after the first read)."""
        i, group = self._group(i)
        if i not in self._particle_types:
            self._particle_types[i] = group["particle_type"][()].astype(np.int64)
        return self._particle_types[i].copy()

    def context(self, i: int) -> np.ndarray | None:
        """``(G,)`` float32 per-trajectory context, or None when the trajectory has none."""
        _, group = self._group(i)
        return group["context"][()].astype(np.float32) if "context" in group else None

    def read_window(self, i: int, start: int, stop: int) -> np.ndarray:
        """Positions of frames ``start:stop``, reading only that slice from disk.

        Returns:
            ``(stop - start, N, D)`` float32.
        """
        _, group = self._group(i)
        dataset = group["position"]
        self._check_window(start, stop, dataset.shape[0], f"{self._keys[self._index(i)]}/position")
        window = dataset[start:stop].astype(np.float32, copy=False)
        check_finite(window, file=self.path, key=f"{self._keys[self._index(i)]}/position",
                     time_offset=start)
        return window

    def step_context_window(self, i: int, start: int, stop: int) -> np.ndarray | None:
        """``(stop - start, S)`` float32 per-step context, or None when there is none."""
        _, group = self._group(i)
        if "step_context" not in group:
            return None
        key = f"{self._keys[self._index(i)]}/step_context"
        self._check_window(start, stop, group["step_context"].shape[0], key)
        window = group["step_context"][start:stop].astype(np.float32, copy=False)
        check_finite(window, file=self.path, key=key, time_offset=start)
        return window

    def __getitem__(self, i: int) -> Trajectory:
        """Load trajectory ``i`` completely."""
        i, group = self._group(i)
        key = self._keys[i]
        num_frames = group["position"].shape[0]
        return Trajectory(
            position=self.read_window(i, 0, num_frames),
            particle_type=self.particle_type(i),
            context=self.context(i),
            step_context=self.step_context_window(i, 0, num_frames),
            key=key,
        )


def available_splits(dataset_dir: str | os.PathLike, suffix: str = H5_SUFFIX) -> list[str]:
    """Names of the split files in a directory (``train``, ``valid``, ``test`` first)."""
    directory = Path(dataset_dir)
    if not directory.is_dir():
        return []
    names = sorted(p.name[: -len(suffix)] for p in directory.glob(f"*{suffix}") if p.is_file())
    return [s for s in SPLITS if s in names] + [s for s in names if s not in SPLITS]


def existing_split_path(dataset_dir: str | os.PathLike, split: str, *,
                        name_expected: bool = True) -> Path:
    """``<dataset_dir>/<split>.h5``, checked to exist.

    Args:
        name_expected: whether the error names the file it expected.

    Raises:
        GnsInputError: the split file does not exist (the message lists those that do).
    """
    directory = Path(dataset_dir)
    path = directory / f"{split}{H5_SUFFIX}"
    if not path.is_file():
        found = available_splits(directory)
        found_text = ", ".join(f"{s}{H5_SUFFIX}" for s in found) if found else "no split files"
        raise GnsInputError(f"dataset has no {split} split: found {found_text}", file=path,
                            expected=f"{split}{H5_SUFFIX}" if name_expected else None)
    return path


def open_split(dataset_dir: str | os.PathLike, split: str,
               metadata: DatasetMetadata | None = None) -> TrajectorySplit:
    """Open ``<dataset_dir>/<split>.h5`` for lazy reading.

    Args:
        dataset_dir: the dataset directory.
        split: ``"train"``, ``"valid"``, ``"test"`` (or any other split file's stem).
        metadata: used to validate trajectories; loaded from ``metadata.json`` when None and
            the file exists (without one, only the dimension-free checks run).

    Raises:
        GnsInputError: the split file does not exist (the message lists those that do).
    """
    directory = Path(dataset_dir)
    path = existing_split_path(directory, split)
    if metadata is None and (directory / METADATA_FILE).is_file():
        metadata = load_metadata(directory)
    return TrajectorySplit(path, metadata)


# ============================================================================ writing
def write_split(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> Path:
    """Write trajectories to one split file in the canonical layout.

    Trajectories are validated (shapes, integer types, finiteness) and written one at a time,
    into a temporary file that replaces ``path`` only when all of them were good: a failed
    write never leaves a half-written split behind. Groups are named ``00000, 00001, ...`` in
    iteration order.

    Args:
        path: the ``.h5`` file to write.
        trajectories: any iterable (a list, a generator, a ``TrajectorySplit``).

    Returns:
        The path written.
    """
    path = Path(path)
    with replacing_h5(path) as out:
        dim = None
        for index, traj in enumerate(trajectories):
            name = f"{index:05d}"
            traj = validate_trajectory(traj, dim=dim, file=path, name=traj.key or name)
            dim = traj.position.shape[2]  # every trajectory of a split shares D
            _write_group(out.create_group(name), traj)
    return path


@contextmanager
def replacing_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file open for writing that replaces ``path`` only if the block succeeds.

    It is written under a temporary name beside ``path`` (parent directories are created) and
    renamed over ``path`` at the end; on any exception it is deleted, so a failed write never
    leaves a half-written file behind.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            yield out


def _write_group(group: h5py.Group, traj: Trajectory) -> None:
    num_frames, num_particles, dim = traj.position.shape
    group.create_dataset("position", data=traj.position,
                         chunks=(min(num_frames, TIME_CHUNK), num_particles, dim))
    group.create_dataset("particle_type", data=traj.particle_type)
    if traj.context is not None:
        group.create_dataset("context", data=traj.context)
    if traj.step_context is not None:
        group.create_dataset("step_context", data=traj.step_context)

"""The ``geoelements/gns`` npz layout, read and written.

Layout: ``{train,valid,test}.npz`` beside a DeepMind-style ``metadata.json``. Each ``.npz``
holds one entry per trajectory (named ``simulation_trajectory_<i>`` by geoelements' tools),
each a pickled object array or tuple ``(positions (T, N, D), particle_type, [material])``:

- ``particle_type`` is an ``(N,)`` integer array or one integer for all particles
  (geoelements' loader broadcasts it with ``np.full(N, particle_type)``);
- the optional third element is a material property, one number per trajectory (a constant
  ``(N,)`` array is accepted too); it becomes our ``context`` of size 1.

Older files instead hold a single entry ``gns_data``: an object array of such tuples.

Entries are pickled, so reading needs ``allow_pickle=True``: only read files you trust.
Per-step context has no place in this layout and is refused on writing.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gns.data.hdf5 import Trajectory, available_splits, open_split, validate_trajectory
from gns.atomic import atomic_path
from gns.data.metadata import load_metadata, save_metadata
from gns.errors import GnsInputError

NPZ_SUFFIX = ".npz"
ENTRY_PREFIX = "simulation_trajectory_"
_LEGACY_KEY = "gns_data"


def _entry_to_trajectory(item: Any, name: str, dim: int | None, file: Path) -> Trajectory:
    """Turn one npz entry ``(positions, particle_type[, material])`` into a Trajectory."""
    if isinstance(item, np.ndarray) and item.dtype == object and item.ndim == 0:
        item = item.item()  # a tuple saved as a 0-d object array
    parts = list(item) if isinstance(item, (tuple, list, np.ndarray)) else None
    if parts is None or len(parts) not in (2, 3) or (isinstance(item, np.ndarray)
                                                     and item.dtype != object):
        raise GnsInputError("entry must be (positions, particle_type[, material_property])",
                            file=file, key=name, expected="a 2- or 3-element object array",
                            found=type(item).__name__ if parts is None else f"{len(parts)} elements")
    position = np.asarray(parts[0])
    if position.dtype == object:
        raise GnsInputError("positions must be a numeric array", file=file, key=f"{name}/position",
                            found="object array")
    num_particles = position.shape[1] if position.ndim == 3 else 0
    particle_type = np.asarray(parts[1])
    if particle_type.ndim == 0 and particle_type.dtype.kind in "iu":
        particle_type = np.full(num_particles, particle_type, dtype=np.int64)
    context = _material_to_context(parts[2], name, num_particles, file) if len(parts) == 3 else None
    traj = Trajectory(position, particle_type, context=context, key=name)
    return validate_trajectory(traj, dim=dim, file=file, name=name)


def _material_to_context(material: Any, name: str, num_particles: int, file: Path) -> np.ndarray:
    values = np.asarray(material, dtype=np.float64)
    if values.ndim == 0:
        return values.reshape(1).astype(np.float32)
    if values.ndim == 1 and len(values) == num_particles and np.all(values == values[0]):
        return values[:1].astype(np.float32)  # a per-particle copy of one trajectory value
    raise GnsInputError("material property must be one value per trajectory (a scalar or a "
                        "constant per-particle array)", file=file, key=f"{name}/material_property",
                        expected="scalar", found=f"shape {values.shape}")


class NpzSplit:
    """Read-only view of one npz split; entries are unpickled one at a time, on access."""

    def __init__(self, path: str | os.PathLike, dim: int | None = None) -> None:
        self.path = Path(path)
        self.dim = dim
        try:
            self._npz = np.load(self.path, allow_pickle=True)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise GnsInputError(f"cannot open as npz: {exc}", file=self.path) from None
        self._legacy = list(self._npz[_LEGACY_KEY]) if _LEGACY_KEY in self._npz.files else None
        self._keys = ([f"{ENTRY_PREFIX}{i}" for i in range(len(self._legacy))]
                      if self._legacy is not None else list(self._npz.files))

    def keys(self) -> list[str]:
        """Entry names, in file order."""
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, i: int) -> Trajectory:
        key = self._keys[i]
        item = self._legacy[i] if self._legacy is not None else self._npz[key]
        return _entry_to_trajectory(item, key, self.dim, self.path)

    def __iter__(self) -> Iterator[Trajectory]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> "NpzSplit":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NpzSplit('{self.path}', {len(self)} trajectories)"


def read_npz_dataset(dataset_dir: str | os.PathLike,
                     splits: Iterable[str] | None = None) -> dict[str, NpzSplit]:
    """Open the npz splits of a geoelements-layout dataset.

    Args:
        dataset_dir: directory with ``metadata.json`` and ``<split>.npz`` files.
        splits: which splits (default: every ``.npz`` present).

    Returns:
        ``{split: NpzSplit}``; index or iterate a split for ``Trajectory`` objects.
    """
    directory = Path(dataset_dir)
    meta = load_metadata(directory)
    present = available_splits(directory, NPZ_SUFFIX)
    wanted = list(splits) if splits is not None else present
    missing = [s for s in wanted if s not in present] or ([] if wanted else ["train"])
    if missing:
        found = ", ".join(f"{s}{NPZ_SUFFIX}" for s in present) or "no .npz files"
        raise GnsInputError(f"dataset has no {missing[0]} split: found {found}",
                            file=directory / f"{missing[0]}{NPZ_SUFFIX}")
    return {s: NpzSplit(directory / f"{s}{NPZ_SUFFIX}", meta.dim) for s in wanted}


def _trajectory_to_entry(traj: Trajectory, file: Path, name: str) -> np.ndarray:
    if traj.step_context is not None:
        raise GnsInputError("the geoelements npz layout cannot store per-step context",
                            file=file, key=f"{name}/step_context")
    if traj.context is not None and traj.context.shape != (1,):
        raise GnsInputError("the geoelements npz layout stores one material value per "
                            "trajectory", file=file, key=f"{name}/context", expected="(1,)",
                            found=traj.context.shape)
    entry = np.empty(2 if traj.context is None else 3, dtype=object)
    entry[0], entry[1] = traj.position, traj.particle_type
    if traj.context is not None:
        entry[2] = float(traj.context[0])
    return entry


def write_npz_file(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> Path:
    """Write trajectories as one geoelements ``.npz`` (compressed, streamed entry by entry).

    Entries are named ``simulation_trajectory_<i>``; the file appears only once complete.
    """
    path = Path(path)
    # What np.savez_compressed does, but one entry at a time instead of all in memory.
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                                                    allowZip64=True) as zf:
        dim = None
        for index, traj in enumerate(trajectories):
            name = f"{ENTRY_PREFIX}{index}"
            traj = validate_trajectory(traj, dim=dim, file=path, name=traj.key or name)
            dim = traj.position.shape[2]
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, _trajectory_to_entry(traj, path, name), allow_pickle=True)
    return path


def write_npz_dataset(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      splits: Iterable[str] | None = None) -> Path:
    """Export a canonical (HDF5) dataset to the geoelements npz layout.

    Returns:
        ``out_dir``, holding ``<split>.npz`` and ``metadata.json``.
    """
    out = Path(out_dir)
    meta = load_metadata(dataset_dir)
    for split in splits if splits is not None else available_splits(dataset_dir):
        with open_split(dataset_dir, split, meta) as source:
            write_npz_file(out / f"{split}{NPZ_SUFFIX}", source)
    save_metadata(meta, out)
    return out

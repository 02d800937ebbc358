"""Format detection, conversion between layouts, and a dataset summary for the CLI.

Three layouts hold the same information (trajectories + ``metadata.json``):

- ``"h5"``: the canonical LagrangeBench-style HDF5 layout (``gns.data.hdf5``);
- ``"tfrecord"``: DeepMind ``learning_to_simulate`` (``gns.data.tfrecord``);
- ``"npz"``: geoelements/gns (``gns.data.npz``).

Mesh datasets have two layouts of their own, told apart from the particle ones by their
metadata files:

- ``"mesh"``: the canonical mesh layout (``gns.data.mesh``): ``.h5`` splits beside a
  ``metadata.json`` with ``"kind": "mesh"``;
- ``"meshgraphnets"``: DeepMind ``meshgraphnets`` (``gns.data.meshgraphnets``): ``.tfrecord``
  splits beside a ``meta.json``.

Conversion streams one trajectory at a time and, on the way, fills in what the metadata lacks:
normalization statistics (from the train split), ``sequence_length`` and context sizes. Mesh
datasets convert to ``"h5"`` (the canonical mesh layout) or ``"tfrecord"`` (meshgraphnets).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from gns.data.hdf5 import H5_SUFFIX, SPLITS, Trajectory, TrajectorySplit, open_split, write_split
from gns.data.mesh import (MeshMetadata, MeshSplit, is_mesh_dataset, load_mesh_metadata,
                           open_mesh_split, save_mesh_metadata, write_mesh_split)
from gns.data.meshgraphnets import (META_FILE as MESHGRAPHNETS_META, MeshgraphnetsSplit,
                                    convert_meshgraphnets, export_meshgraphnets,
                                    load_meshgraphnets_meta, mesh_metadata_from_meshgraphnets,
                                    save_meshgraphnets_meta, write_meshgraphnets_split)
from gns.data.metadata import METADATA_FILE, DatasetMetadata, load_metadata, save_metadata
from gns.data.npz import NPZ_SUFFIX, NpzSplit, write_npz_file
from gns.data.objects import is_object_dataset, load_object_metadata, open_object_split
from gns.data.stats import StatisticsAccumulator
from gns.data.tfrecord import TFRECORD_SUFFIX, TfRecordSplit, write_tfrecord_file
from gns.errors import GnsInputError
from gns.progress import no_bar

FORMAT_SUFFIXES = {"h5": H5_SUFFIX, "tfrecord": TFRECORD_SUFFIX, "npz": NPZ_SUFFIX}
# Mesh layouts share their split suffixes with particle layouts; metadata tells them apart.
MESH_FORMAT_SUFFIXES = {"mesh": H5_SUFFIX, "meshgraphnets": TFRECORD_SUFFIX}
_WRITERS: dict[str, Callable[[Path, Iterable[Trajectory]], Path]] = {
    "h5": write_split, "tfrecord": write_tfrecord_file, "npz": write_npz_file,
}


def _present_splits(directory: Path, fmt: str) -> list[str]:
    suffix = {**FORMAT_SUFFIXES, **MESH_FORMAT_SUFFIXES}[fmt]
    return [s for s in SPLITS if (directory / f"{s}{suffix}").is_file()]


def _mesh_flavour(directory: Path, fmt: str) -> str:
    """``"mesh"`` / ``"meshgraphnets"`` when the metadata files say the splits hold meshes.

    ``.h5`` splits are a mesh dataset when ``metadata.json`` has ``"kind": "mesh"``;
    ``.tfrecord`` splits are meshgraphnets when a ``meta.json`` lies beside them and no
    particle ``metadata.json`` does.
    """
    if fmt == "h5" and is_mesh_dataset(directory):
        return "mesh"
    if fmt == "tfrecord" and (directory / MESHGRAPHNETS_META).is_file() and (
            not (directory / METADATA_FILE).is_file() or is_mesh_dataset(directory)):
        return "meshgraphnets"
    return fmt


def detect_format(dataset_dir: str | os.PathLike) -> str:
    """Which layout a dataset directory uses, from its ``train/valid/test`` split files.

    Returns:
        ``"h5"``, ``"tfrecord"`` or ``"npz"`` for particle datasets; ``"mesh"`` (canonical
        ``.h5`` with a ``"kind": "mesh"`` metadata.json) or ``"meshgraphnets"`` (``.tfrecord``
        with a DeepMind ``meta.json``) for mesh datasets.

    Raises:
        GnsInputError: no split file of any format, or split files of several formats.
    """
    directory = Path(dataset_dir)
    present = [_mesh_flavour(directory, fmt) for fmt in FORMAT_SUFFIXES
               if _present_splits(directory, fmt)]
    if len(present) == 1:
        return present[0]
    names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if not present:
        raise GnsInputError("no dataset split files found", file=directory,
                            expected="train/valid/test with suffix .h5, .tfrecord or .npz",
                            found=", ".join(names) or "nothing")
    raise GnsInputError(f"split files of several formats ({', '.join(present)}); say which to "
                        "read with src_format", file=directory)


def _check_format(fmt: str, argument: str) -> None:
    if fmt not in FORMAT_SUFFIXES:
        raise GnsInputError(f"unknown dataset format for {argument}",
                            expected=" or ".join(FORMAT_SUFFIXES), found=repr(fmt))


def open_source(dataset_dir: str | os.PathLike, fmt: str, split: str,
                metadata: DatasetMetadata,
                verify_crc: bool = True) -> TrajectorySplit | TfRecordSplit | NpzSplit:
    """A sized, iterable reader of one split in any of the three layouts."""
    directory = Path(dataset_dir)
    path = directory / f"{split}{FORMAT_SUFFIXES[fmt]}"
    if fmt == "h5":
        return open_split(directory, split, metadata)
    if not path.is_file():
        found = ", ".join(f"{s}{FORMAT_SUFFIXES[fmt]}" for s in _present_splits(directory, fmt))
        raise GnsInputError(f"dataset has no {split} split: found {found or 'no split files'}",
                            file=path)
    if fmt == "tfrecord":
        return TfRecordSplit(path, metadata.dim, verify_crc)
    return NpzSplit(path, metadata.dim)


class _Observer:
    """Watches trajectories stream past to fill in missing metadata afterwards."""

    def __init__(self, meta: DatasetMetadata, want_statistics: bool) -> None:
        self.statistics = (StatisticsAccumulator(meta.bounds, meta.periodic_boundary_conditions)
                           if want_statistics else None)
        self.num_frames: dict[bool, int] = {}  # first trajectory's T, keyed by "is train"
        self.context_sizes: set[int] = set()
        self.step_context_sizes: set[int] = set()

    def watch(self, trajectories: Iterable[Trajectory], train: bool) -> Iterator[Trajectory]:
        for traj in trajectories:
            if train and self.statistics is not None:
                self.statistics.start_trajectory()
                self.statistics.add_positions(traj.position)
            self.num_frames.setdefault(train, traj.sequence_length)
            if traj.context is not None:
                self.context_sizes.add(len(traj.context))
            if traj.step_context is not None:
                self.step_context_sizes.add(traj.step_context.shape[1])
            yield traj

    def completed(self, meta: DatasetMetadata) -> DatasetMetadata:
        """``meta`` with statistics, sequence length and context sizes filled where missing."""
        updates: dict[str, Any] = {}
        if self.statistics is not None:
            if self.statistics.acceleration.count:
                meta = meta.with_statistics(self.statistics.result())
            else:
                warnings.warn("no train split with 3+ frames: normalization statistics stay "
                              "missing", stacklevel=3)
        num_frames = self.num_frames.get(True, self.num_frames.get(False, 0))
        if meta.sequence_length is None and num_frames > 1:
            updates["sequence_length"] = num_frames - 1  # steps, DeepMind convention
        if meta.context_size == 0 and len(self.context_sizes) == 1:
            updates["context_size"] = next(iter(self.context_sizes))
        if meta.step_context_size == 0 and len(self.step_context_sizes) == 1:
            updates["step_context_size"] = next(iter(self.step_context_sizes))
        return dataclasses.replace(meta, **updates) if updates else meta


def convert_dataset(src_dir: str | os.PathLike, dst_dir: str | os.PathLike,
                    src_format: str = "auto", dst_format: str = "h5",
                    splits: Iterable[str] | None = None, progress: bool = True,
                    recompute_statistics: bool = False, verify_crc: bool = True) -> Path:
    """Convert a dataset between layouts, completing its metadata.

    Every split that exists (or those in ``splits``) is streamed trajectory by trajectory into
    ``dst_dir``; then ``metadata.json`` is written there with, where missing, the statistics
    of the train split (``compute_statistics`` definitions), ``sequence_length`` (steps of
    the first trajectory) and context sizes. LagrangeBench's ``sequence_length_train`` is
    mapped to ``sequence_length`` when the metadata is loaded.

    Args:
        src_dir: source dataset directory.
        dst_dir: destination directory (may equal ``src_dir`` when the formats differ).
        src_format: ``"auto"`` (see ``detect_format``), ``"h5"``, ``"tfrecord"`` or ``"npz"``.
        dst_format: ``"h5"`` (canonical), ``"tfrecord"`` or ``"npz"``.
        splits: split names to convert (default: all of train/valid/test present).
        progress: show a tqdm bar over trajectories.
        recompute_statistics: recompute statistics even when the metadata has them.
        verify_crc: check TFRecord CRCs when reading TFRecord.

    Returns:
        ``dst_dir`` as a Path.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    fmt = detect_format(src) if src_format == "auto" else _mesh_flavour(src, src_format)
    if fmt in MESH_FORMAT_SUFFIXES:
        return _convert_mesh(src, dst, fmt, dst_format, splits, progress, verify_crc)
    _check_format(fmt, "src_format")
    _check_format(dst_format, "dst_format")
    if fmt == dst_format and src.resolve() == dst.resolve():
        raise GnsInputError("source and destination are the same dataset", file=src)
    meta = load_metadata(src)
    wanted = list(splits) if splits is not None else _present_splits(src, fmt)
    if not wanted:
        raise GnsInputError(f"no {fmt} split files to convert", file=src)
    observer = _Observer(meta, recompute_statistics or not meta.has_statistics())
    for split in wanted:
        source = open_source(src, fmt, split, meta, verify_crc)
        try:
            bar = tqdm(source, total=len(source), desc=f"{split} -> {dst_format}", unit="traj",
                       disable=no_bar(progress))
            _WRITERS[dst_format](dst / f"{split}{FORMAT_SUFFIXES[dst_format]}",
                                 observer.watch(bar, train=split == "train"))
        finally:
            if hasattr(source, "close"):
                source.close()
    save_metadata(observer.completed(meta), dst)
    return dst


def inspect_dataset(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Summary of a dataset in any layout, for ``gns inspect``.

    Returns:
        A JSON-ready dict: ``format``, the geometry and metadata (``dim``, ``dt``, ``bounds``,
        ``periodic_boundary_conditions``, ``default_connectivity_radius``,
        ``sequence_length`` (steps), particle-type settings, context sizes, ``gravity``,
        ``statistics`` or None) and per split: ``num_trajectories``, ``num_frames`` and
        ``num_particles`` as ``[min, max]``, ``particle_type_counts`` (type -> particles
        over all trajectories), ``has_context``, ``has_step_context``.
    """
    directory = Path(dataset_dir)
    fmt = detect_format(directory)
    if fmt in MESH_FORMAT_SUFFIXES:
        return _inspect_mesh(directory, fmt)
    if fmt == "h5" and is_object_dataset(directory):
        return _inspect_objects(directory)
    meta = load_metadata(directory)
    summary: dict[str, Any] = {"path": str(directory), "format": fmt}
    for key in ("dim", "dt", "bounds", "periodic_boundary_conditions",
                "default_connectivity_radius", "sequence_length", "kinematic_particle_types",
                "num_particle_types", "context_size", "step_context_size", "gravity"):
        summary[key] = getattr(meta, key)
    summary["statistics"] = ({k: getattr(meta, k) for k in ("vel_mean", "vel_std", "acc_mean",
                                                            "acc_std")}
                             if meta.has_statistics() else None)
    summary["splits"] = {}
    for split in _present_splits(directory, fmt):
        source = open_source(directory, fmt, split, meta)
        try:
            summary["splits"][split] = _summarize_split(source)
        finally:
            if hasattr(source, "close"):
                source.close()
    return summary


def _summarize_split(source: TrajectorySplit | TfRecordSplit | NpzSplit) -> dict[str, Any]:
    frames, particles, types = [], [], Counter()
    has_context = has_step_context = False
    if isinstance(source, TrajectorySplit):
        # Shapes and types only: no position is read.
        for i in range(len(source)):
            frames.append(source.sequence_length(i))
            particles.append(source.num_particles(i))
            types.update(source.particle_type(i).tolist())
            has_context |= source.context(i) is not None
            has_step_context |= source.step_context_window(i, 0, 1) is not None
    else:
        for traj in source:
            frames.append(traj.sequence_length)
            particles.append(traj.num_particles)
            types.update(traj.particle_type.tolist())
            has_context |= traj.context is not None
            has_step_context |= traj.step_context is not None
    return {
        "num_trajectories": len(frames),
        "num_frames": [min(frames), max(frames)] if frames else None,
        "num_particles": [min(particles), max(particles)] if particles else None,
        "particle_type_counts": {int(t): int(c) for t, c in sorted(types.items())},
        "has_context": has_context,
        "has_step_context": has_step_context,
    }


# ============================================================================ mesh datasets
def _convert_mesh(src: Path, dst: Path, fmt: str, dst_format: str, splits: Iterable[str] | None,
                  progress: bool, verify_crc: bool) -> Path:
    """``convert_dataset`` for mesh sources: to canonical ``"h5"`` or meshgraphnets
    ``"tfrecord"``."""
    if dst_format not in ("h5", "tfrecord"):
        raise GnsInputError("a mesh dataset converts to h5 (canonical mesh layout) or tfrecord "
                            "(DeepMind meshgraphnets)", file=src, expected="h5 or tfrecord",
                            found=repr(dst_format))
    same_layout = (fmt == "mesh") == (dst_format == "h5")
    if same_layout and src.resolve() == dst.resolve():
        raise GnsInputError("source and destination are the same dataset", file=src)
    wanted = list(splits) if splits is not None else _present_splits(src, fmt)
    if not wanted:
        raise GnsInputError(f"no {fmt} split files to convert", file=src)
    if fmt == "meshgraphnets" and dst_format == "h5":
        return convert_meshgraphnets(src, dst, wanted, progress=progress, verify_crc=verify_crc)
    if fmt == "mesh" and dst_format == "tfrecord":
        return export_meshgraphnets(src, dst, wanted, progress=progress)
    if fmt == "mesh":  # canonical -> canonical: rewritten (and so re-validated) split by split
        metadata = load_mesh_metadata(src)
        for split in wanted:
            with open_mesh_split(src, split, metadata) as source:
                bar = tqdm(source, total=len(source), desc=f"{split} -> h5", unit="traj",
                           disable=no_bar(progress))
                write_mesh_split(dst / f"{split}{H5_SUFFIX}", bar, metadata)
        save_mesh_metadata(metadata, dst)
        return dst
    meta = load_meshgraphnets_meta(src)  # meshgraphnets -> meshgraphnets: a validated copy
    for split in wanted:
        source = MeshgraphnetsSplit(src / f"{split}{TFRECORD_SUFFIX}", meta, verify_crc)
        bar = tqdm(source, total=len(source), desc=f"{split} -> tfrecord", unit="traj",
                   disable=no_bar(progress))
        write_meshgraphnets_split(dst / f"{split}{TFRECORD_SUFFIX}", bar, meta)
    save_meshgraphnets_meta(meta, dst)
    return dst


def _inspect_mesh(directory: Path, fmt: str) -> dict[str, Any]:
    """``inspect_dataset`` for mesh datasets.

    Per split: ``num_trajectories``, ``num_frames``, ``num_nodes`` and ``num_cells`` as
    ``[min, max]`` (a remeshed trajectory counts its largest frame), and
    ``node_type_counts`` (type id -> nodes over all trajectories, first frame of remeshed ones).
    A meshgraphnets dataset is decoded record by record; a canonical one reads no dynamic data.
    """
    splits: dict[str, Any] = {}
    found_types: set[int] = set()
    if fmt == "mesh":
        metadata: MeshMetadata = load_mesh_metadata(directory)
        for split in _present_splits(directory, fmt):
            with open_mesh_split(directory, split, metadata) as source:
                splits[split] = _summarize_mesh_split(source)
    else:
        meta = load_meshgraphnets_meta(directory)
        frames = None
        for split in _present_splits(directory, fmt):
            source = MeshgraphnetsSplit(directory / f"{split}{TFRECORD_SUFFIX}", meta)
            splits[split] = _summarize_mesh_split(source)
            found_types.update(splits[split]["node_type_counts"])
            frames = frames or (splits[split]["num_frames"] or [None])[0]
        metadata = mesh_metadata_from_meshgraphnets(meta, found_types or [0], num_frames=frames,
                                                    source=directory / MESHGRAPHNETS_META)
    summary: dict[str, Any] = {"path": str(directory), "format": fmt,
                               **metadata.to_dict(), "splits": splits}
    return summary


def _span(values: list[int]) -> list[int] | None:
    return [min(values), max(values)] if values else None


def _inspect_objects(directory: Path) -> dict[str, Any]:
    """``inspect_dataset`` for object datasets (``"kind": "objects"``): the metadata and, per split,
    ``num_trajectories``, ``num_frames`` and ``num_objects`` as ``[min, max]``, ``shape_counts`` (shape
    name -> objects over all trajectories), ``num_springs`` and ``num_obstacles`` as ``[min, max]``.
    Reads the scenes only, no frames."""
    metadata = load_object_metadata(directory)
    names = {code: name for name, code in metadata.shape_kinds.items()}
    splits: dict[str, Any] = {}
    for split in _present_splits(directory, "h5"):
        frames, objects, springs, obstacles, shapes = [], [], [], [], Counter()
        with open_object_split(directory, split, metadata) as source:
            for i in range(len(source)):
                scene = source.scene(i)
                frames.append(source.num_frames(i))
                objects.append(scene.num_objects)
                springs.append(scene.num_springs)
                obstacles.append(scene.num_obstacles)
                shapes.update(names.get(int(c), str(int(c))) for c in scene.shape)
        splits[split] = {"num_trajectories": len(frames), "num_frames": _span(frames),
                         "num_objects": _span(objects), "shape_counts": dict(sorted(shapes.items())),
                         "num_springs": _span(springs), "num_obstacles": _span(obstacles)}
    summary = {"path": str(directory), "format": "objects", **metadata.to_dict(), "splits": splits}
    if isinstance(summary.get("generator"), dict) and "trajectories" in summary["generator"]:
        # one report per trajectory and split: metadata.json has them; the summary says how many
        reports = summary["generator"]["trajectories"]
        summary["generator"] = {**summary["generator"], "trajectories": (
            {name: len(r) for name, r in reports.items()} if isinstance(reports, dict) else len(reports))}
    return summary


def _summarize_mesh_split(source: MeshSplit | MeshgraphnetsSplit) -> dict[str, Any]:
    frames, nodes, cells, types = [], [], [], Counter()
    if isinstance(source, MeshSplit):
        for i in range(len(source)):
            frames.append(source.num_frames(i))
            nodes.append(source.num_nodes(i))
            cells.append(source.num_cells(i))
            first = int(source.nodes_per_frame(i)[0])
            types.update(source.node_type(i)[:first].tolist())
    else:
        for traj in source:
            frames.append(traj.num_frames)
            nodes.append(traj.num_nodes)
            cells.append(int(traj.row_lengths["cells"].max()) if "cells" in traj.row_lengths
                         else len(traj.cells))
            types.update(traj.node_type[:int(traj.nodes_per_frame()[0])].tolist())

    return {
        "num_trajectories": len(frames),
        "num_frames": _span(frames),
        "num_nodes": _span(nodes),
        "num_cells": _span(cells),
        "node_type_counts": {int(t): int(c) for t, c in sorted(types.items())},
    }

"""DeepMind ``meshgraphnets`` datasets, read and written without TensorFlow.

Layout: a directory with ``meta.json`` and ``{train,valid,test}.tfrecord``. Each record is one
trajectory, a serialized ``tf.train.Example`` (a plain Example, not a SequenceExample) whose
features are all ``bytes_list``s holding the raw little-endian bytes of one array each.
``meta.json`` says how to read them::

    {"simulator": "arcsim", "dt": 0.02, "collision_radius": null, "trajectory_length": 400,
     "field_names": ["cells", "mesh_pos", "node_type", "world_pos"],
     "features": {"cells":     {"type": "static",  "shape": [1, -1, 3],   "dtype": "int32"},
                  "mesh_pos":  {"type": "static",  "shape": [1, -1, 2],   "dtype": "float32"},
                  "node_type": {"type": "static",  "shape": [1, -1, 1],   "dtype": "int32"},
                  "world_pos": {"type": "dynamic", "shape": [400, -1, 3], "dtype": "float32"}}}

- ``static``: shape ``[1, -1, F]``, stored once. DeepMind's loader tiles it over the
  ``trajectory_length`` frames; we keep it static.
- ``dynamic``: shape ``[T, -1, F]``, every frame.
- ``dynamic_varlen``: shape ``[-1, F]``, rows of all frames concatenated, with a feature
  ``length_<name>`` (int32 rows per frame) that ``field_names`` lists but ``features`` does not.
  Remeshed datasets (``flag_dynamic_sizing``) store their mesh arrays this way.

``prev|world_pos`` and ``target|world_pos`` are derived by DeepMind's training input pipeline,
never stored, so they do not appear here. Some published ``meta.json`` files write dtypes as
``"<dtype: 'float32'>"``; that spelling is accepted.

In the canonical format (``gns.data.mesh``) ``mesh_pos``, ``cells`` and ``node_type`` become
the mesh arrays (``node_type`` ``[1, N, 1]`` -> ``(N,)``), other static features static fields,
and ``dynamic_varlen`` arrays are kept flattened with their row lengths.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from gns.data.hdf5 import H5_SUFFIX, available_splits
from gns.data.mesh import (CELL_TYPES, MESH_ARRAYS, MeshFieldSpec, MeshMetadata, MeshTarget,
                           MeshTrajectory, load_mesh_metadata, node_type_name, open_mesh_split,
                           save_mesh_metadata, validate_mesh_trajectory, write_mesh_split)
from gns.atomic import atomic_path, write_json_atomic
from gns.data.metadata import _listing
from gns.data.tfrecord import (TFRECORD_SUFFIX, Feature, WireFormatError, _write_record,
                               decode_example, encode_example, iter_records, read_record_at,
                               record_offsets)
from gns.errors import GnsInputError
from gns.progress import no_bar

META_FILE = "meta.json"
FEATURE_TYPES = ("static", "dynamic", "dynamic_varlen")
LENGTH_PREFIX = "length_"  # feature holding a dynamic_varlen array's rows per frame
_LEGACY_DTYPE = re.compile(r"^<dtype: '(\w+)'>$")
_NDIMS = {"static": (2, 3), "dynamic": (3,), "dynamic_varlen": (2,)}
# Solver names in meta["simulator"] are not domains; these are the ones we can name.
_SIMULATOR_DOMAINS = {"arcsim": "cloth"}


# ============================================================================ meta.json
@dataclass(frozen=True)
class MgnFeature:
    """One entry of ``meta.json`` ``features``."""

    name: str
    type: str  # "static" | "dynamic" | "dynamic_varlen"
    shape: tuple[int, ...]  # as declared, -1 for the node (or row) axis
    dtype: np.dtype  # little-endian element type of the raw bytes


def _parse_dtype(value: Any, key: str, source: object) -> np.dtype:
    text = str(value)
    legacy = _LEGACY_DTYPE.match(text)
    if legacy:
        text = legacy.group(1)
    try:
        dtype = np.dtype(text)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "fiu":
        raise GnsInputError("unknown dtype", file=source, key=key,
                            expected='"float32", "int32" or another numeric type',
                            found=repr(value))
    return dtype.newbyteorder("<")


def parse_meshgraphnets_features(meta: Mapping[str, Any],
                                 source: object = None) -> dict[str, MgnFeature]:
    """Parse and check the ``features`` of a ``meta.json`` object.

    Raises:
        GnsInputError: ``features`` missing or malformed, an unknown type or dtype, a shape
            that does not fit its type, or no ``mesh_pos``, ``cells`` or ``node_type``.
    """
    features = meta.get("features") if isinstance(meta, Mapping) else None
    if not isinstance(features, Mapping):
        raise GnsInputError("meta.json needs a 'features' object", file=source, key="features",
                            expected='{name: {"type", "shape", "dtype"}}',
                            found=repr(features))
    out = {}
    for name, spec in features.items():
        key = f"features/{name}"
        if not isinstance(spec, Mapping) or not {"type", "shape", "dtype"} <= set(spec):
            raise GnsInputError("each feature needs type, shape and dtype", file=source, key=key,
                                expected='{"type", "shape", "dtype"}', found=repr(spec))
        kind = spec["type"]
        if kind not in FEATURE_TYPES:
            raise GnsInputError("unknown feature type", file=source, key=f"{key}/type",
                                expected=" or ".join(FEATURE_TYPES), found=repr(kind))
        shape = spec["shape"]
        if (not isinstance(shape, list) or not all(isinstance(s, int) for s in shape)
                or len(shape) not in _NDIMS[kind] or sum(s == -1 for s in shape) > 1
                or any(s < -1 or s == 0 for s in shape)
                or (kind == "static" and len(shape) == 3 and shape[0] != 1)):
            raise GnsInputError(f"shape does not fit a {kind} feature", file=source,
                                key=f"{key}/shape",
                                expected={"static": "[1, -1, F]", "dynamic": "[T, -1, F]",
                                          "dynamic_varlen": "[-1, F]"}[kind],
                                found=repr(shape))
        out[name] = MgnFeature(name, kind, tuple(shape),
                               _parse_dtype(spec["dtype"], f"{key}/dtype", source))
    for name in MESH_ARRAYS:
        if name not in out:
            raise GnsInputError("meta.json lacks a mesh feature", file=source,
                                key=f"features/{name}", expected=list(MESH_ARRAYS),
                                found=sorted(out))
    return out


def load_meshgraphnets_meta(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``<dataset_dir>/meta.json`` and check its ``features``.

    Returns:
        The JSON object, unchanged.

    Raises:
        GnsInputError: the file is missing, not JSON, or its features are malformed.
    """
    path = Path(dataset_dir) / META_FILE
    if not path.is_file():
        raise GnsInputError("not a meshgraphnets dataset: no meta.json", file=path,
                            expected=f"{META_FILE} beside the .tfrecord files",
                            found=_listing(Path(dataset_dir)))
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GnsInputError(f"not valid JSON: {exc}", file=path) from None
    parse_meshgraphnets_features(meta, source=path)
    return meta


def save_meshgraphnets_meta(meta: Mapping[str, Any], dataset_dir: str | os.PathLike) -> Path:
    """Write ``<dataset_dir>/meta.json`` atomically, after checking its features."""
    parse_meshgraphnets_features(meta)
    return write_json_atomic(Path(dataset_dir) / META_FILE, meta)


def is_meshgraphnets_dataset(dataset_dir: str | os.PathLike) -> bool:
    """True when the directory holds a ``meta.json`` and at least one ``.tfrecord`` file."""
    directory = Path(dataset_dir)
    return (directory / META_FILE).is_file() and bool(available_splits(directory, TFRECORD_SUFFIX))


# ============================================================================ records
def _raw_array(features: Mapping[str, Feature], name: str, dtype: np.dtype, *, file: object,
               record: str) -> np.ndarray:
    """A bytes feature's values joined and read as one flat array."""
    if name not in features:
        raise GnsInputError("record lacks a feature that meta.json declares", file=file,
                            key=f"{record}/{name}", expected=f"a feature '{name}'",
                            found=sorted(features))
    feature = features[name]
    if feature.kind != "bytes":
        raise GnsInputError("feature must be a bytes_list of raw array bytes", file=file,
                            key=f"{record}/{name}", expected="bytes_list",
                            found=f"{feature.kind}_list" if feature.kind else "an empty feature")
    data = b"".join(feature.values)
    if len(data) % dtype.itemsize:
        raise GnsInputError(f"byte length is not a multiple of {dtype.itemsize}", file=file,
                            key=f"{record}/{name}", expected=dtype.name, found=f"{len(data)} bytes")
    return np.frombuffer(data, dtype=dtype)


def _shaped(values: np.ndarray, spec: MgnFeature, *, file: object, record: str) -> np.ndarray:
    """Reshape to the declared shape; static ``[1, N, F]`` loses its leading 1."""
    try:
        shaped = values.reshape(spec.shape)
    except ValueError:
        raise GnsInputError("values do not fit the shape meta.json declares", file=file,
                            key=f"{record}/{spec.name}", expected=f"shape {list(spec.shape)}",
                            found=f"{values.size} values") from None
    return shaped[0] if spec.type == "static" and shaped.ndim == 3 else shaped


def decode_meshgraphnets_record(data: bytes | memoryview, features: Mapping[str, MgnFeature], *,
                                file: object = None, index: int = 0) -> MeshTrajectory:
    """Decode one record into a validated ``MeshTrajectory``.

    Args:
        data: a serialized ``tf.train.Example``.
        features: the parsed ``meta.json`` features (``parse_meshgraphnets_features``).
        file, index: for error messages (the key is ``record <index>/<feature>``).

    Raises:
        GnsInputError: bytes that are not an Example, a missing feature, values that do not
            fit the declared shape, or anything ``validate_mesh_trajectory`` refuses.
    """
    record = f"record {index}"
    try:
        raw = decode_example(data)
    except (WireFormatError, UnicodeDecodeError) as exc:
        raise GnsInputError(f"not a valid tf.train.Example: {exc}", file=file,
                            key=record) from None
    arrays: dict[str, np.ndarray] = {}
    row_lengths: dict[str, np.ndarray] = {}
    for spec in features.values():
        values = _shaped(_raw_array(raw, spec.name, spec.dtype, file=file, record=record), spec,
                         file=file, record=record)
        if spec.type == "dynamic_varlen":
            lengths = _raw_array(raw, LENGTH_PREFIX + spec.name, np.dtype("<i4"), file=file,
                                 record=record).astype(np.int64)
            if int(lengths.sum()) != len(values):
                raise GnsInputError(
                    "row lengths do not add up to the rows (check the feature's shape in "
                    "meta.json: some published files declare the wrong width)", file=file,
                    key=f"{record}/{LENGTH_PREFIX}{spec.name}",
                    expected=f"sum = {len(values)} rows of shape {list(spec.shape)}",
                    found=f"sum = {int(lengths.sum())}")
            row_lengths[spec.name] = lengths
        elif spec.type == "dynamic" and spec.name in MESH_ARRAYS:
            # A mesh array that changes every frame at a fixed size: flatten it like a
            # remeshed one, since the canonical mesh arrays have no time axis.
            num_frames, rows = values.shape[:2]
            values = values.reshape(num_frames * rows, -1)  # (T * R, F)
            row_lengths[spec.name] = np.full(num_frames, rows, dtype=np.int64)
        arrays[spec.name] = values
    node_type = arrays["node_type"]
    if node_type.ndim == 2 and node_type.shape[1] != 1:
        raise GnsInputError("node_type must hold one type per node", file=file,
                            key=f"{record}/node_type", expected="shape [..., 1]",
                            found=f"shape {list(node_type.shape)}")
    traj = MeshTrajectory(
        mesh_pos=arrays["mesh_pos"], cells=arrays["cells"], node_type=node_type.reshape(-1),
        fields={n: v for n, v in arrays.items()
                if n not in MESH_ARRAYS and features[n].type != "static"},
        static_fields={n: v for n, v in arrays.items()
                       if n not in MESH_ARRAYS and features[n].type == "static"},
        row_lengths=row_lengths, key=f"{index:05d}")
    return validate_mesh_trajectory(traj, file=file, name=record)


def _array_for_feature(traj: MeshTrajectory, spec: MgnFeature, *, file: object,
                       name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The array (in the feature's layout) and its row lengths (varlen only) of a trajectory."""
    try:
        values = traj.array(spec.name)
    except KeyError:
        raise GnsInputError("trajectory lacks a feature that meta.json declares", file=file,
                            key=f"{name}/{spec.name}") from None
    if spec.name == "node_type":
        values = values[:, None]  # (N,) -> (N, 1), DeepMind's layout
    lengths = traj.row_lengths.get(spec.name)
    is_dynamic = spec.name in traj.fields or lengths is not None
    expected = {"static": "a static array", "dynamic": "a dynamic array",
                "dynamic_varlen": "a dynamic array"}[spec.type]
    if (spec.type == "static") == is_dynamic:
        raise GnsInputError(f"meta.json declares {expected}", file=file,
                            key=f"{name}/{spec.name}", expected=spec.type,
                            found="dynamic" if is_dynamic else "static")
    if spec.type == "dynamic" and lengths is not None:
        if len(set(lengths.tolist())) > 1:
            raise GnsInputError("rows change over time but meta.json declares a fixed-size "
                                "dynamic feature", file=file, key=f"{name}/{spec.name}",
                                expected="dynamic_varlen", found="dynamic")
        values = values.reshape(len(lengths), -1, values.shape[-1])  # (T, N, F)
    if spec.type == "dynamic_varlen" and lengths is None:
        lengths = np.full(values.shape[0], values.shape[1], dtype=np.int64)
        values = values.reshape(-1, values.shape[-1])  # (T * N, F)
    if values.shape[-1] != spec.shape[-1] or (
            spec.type == "dynamic" and spec.shape[0] != -1 and values.shape[0] != spec.shape[0]):
        raise GnsInputError("array does not fit the shape meta.json declares", file=file,
                            key=f"{name}/{spec.name}", expected=f"shape {list(spec.shape)}",
                            found=f"shape {list(values.shape)}")
    return values, lengths


def encode_meshgraphnets_record(traj: MeshTrajectory, features: Mapping[str, MgnFeature],
                                field_names: Iterable[str] | None = None, *,
                                file: object = None, name: str = "trajectory") -> bytes:
    """Serialize a (validated) trajectory as a DeepMind ``tf.train.Example``.

    Args:
        traj: the trajectory; it must hold exactly the arrays ``features`` declares.
        features: the parsed ``meta.json`` features.
        field_names: order of the features in the record (default: ``features`` order, each
            ``length_<name>`` right after its array).
        file, name: for error messages.
    """
    stored = {*MESH_ARRAYS, *traj.fields, *traj.static_fields}
    undeclared = sorted(stored - set(features))
    if undeclared:
        raise GnsInputError("trajectory has an array meta.json does not declare", file=file,
                            key=f"{name}/{undeclared[0]}", expected=sorted(features),
                            found=undeclared)
    out: dict[str, Feature] = {}
    for spec in features.values():
        values, lengths = _array_for_feature(traj, spec, file=file, name=name)
        out[spec.name] = Feature("bytes", [np.ascontiguousarray(values, spec.dtype).tobytes()])
        if spec.type == "dynamic_varlen":
            out[LENGTH_PREFIX + spec.name] = Feature("bytes", [lengths.astype("<i4").tobytes()])
    if field_names is not None:
        order = [n for n in field_names if n in out]
        out = {n: out[n] for n in order + [n for n in out if n not in order]}
    return encode_example(out)


# ============================================================================ splits
class MeshgraphnetsSplit:
    """One ``.tfrecord`` split: iterate to stream its trajectories, or index them.

    Iteration reads the file front to back; indexing first scans the record headers once
    (``record_offsets``) and then seeks. The object holds no open file, so it pickles.
    """

    def __init__(self, path: str | os.PathLike, meta: Mapping[str, Any],
                 verify_crc: bool = True) -> None:
        self.path = Path(path)
        self.meta = dict(meta)
        self.features = parse_meshgraphnets_features(meta, source=self.path.parent / META_FILE)
        self.verify_crc = verify_crc
        self._offsets: list[int] | None = None

    def _record_offsets(self) -> list[int]:
        if self._offsets is None:
            self._offsets = record_offsets(self.path)
        return self._offsets

    def __len__(self) -> int:
        return len(self._record_offsets())

    def __iter__(self) -> Iterator[MeshTrajectory]:
        for index, data in enumerate(iter_records(self.path, verify_crc=self.verify_crc)):
            yield decode_meshgraphnets_record(data, self.features, file=self.path, index=index)

    def __getitem__(self, i: int) -> MeshTrajectory:
        offsets = self._record_offsets()
        if not -len(offsets) <= i < len(offsets):
            raise IndexError(f"record {i} out of range for {len(offsets)} records in {self.path}")
        i %= len(offsets)
        with self.path.open("rb") as fp:
            data = read_record_at(fp, offsets[i], path=self.path, index=i,
                                  verify_crc=self.verify_crc)
        return decode_meshgraphnets_record(data, self.features, file=self.path, index=i)

    def __repr__(self) -> str:
        return f"MeshgraphnetsSplit('{self.path}')"


def _check_splits(directory: Path, wanted: list[str], suffix: str) -> None:
    present = available_splits(directory, suffix)
    missing = [s for s in wanted if s not in present]
    if missing:
        found = ", ".join(f"{s}{suffix}" for s in present) or f"no {suffix} files"
        raise GnsInputError(f"dataset has no {missing[0]} split: found {found}",
                            file=directory / f"{missing[0]}{suffix}")


def read_meshgraphnets_split(dataset_dir: str | os.PathLike, split: str,
                             verify_crc: bool = True) -> MeshgraphnetsSplit:
    """Open ``<dataset_dir>/<split>.tfrecord`` of a DeepMind ``meshgraphnets`` dataset.

    Raises:
        GnsInputError: no ``meta.json``, malformed features, or no such split (the message
            lists the ``.tfrecord`` files that exist).
    """
    directory = Path(dataset_dir)
    meta = load_meshgraphnets_meta(directory)
    _check_splits(directory, [split], TFRECORD_SUFFIX)
    return MeshgraphnetsSplit(directory / f"{split}{TFRECORD_SUFFIX}", meta, verify_crc)


def write_meshgraphnets_split(path: str | os.PathLike, trajectories: Iterable[MeshTrajectory],
                              meta: Mapping[str, Any]) -> Path:
    """Write trajectories as one DeepMind ``.tfrecord`` file laid out as ``meta`` says.

    Each trajectory is validated first; the file is written to a temporary sibling and renamed
    only when all trajectories were good. Write ``meta.json`` with ``save_meshgraphnets_meta``.

    Args:
        path: the ``.tfrecord`` file.
        trajectories: trajectories holding exactly the arrays ``meta["features"]`` declares.
        meta: the ``meta.json`` object.

    Returns:
        The path written.
    """
    path = Path(path)
    features = parse_meshgraphnets_features(meta)
    field_names = meta.get("field_names")
    with atomic_path(path) as tmp, tmp.open("xb") as fp:
        for index, traj in enumerate(trajectories):
            name = traj.key or f"{index:05d}"
            traj = validate_mesh_trajectory(traj, file=path, name=name)
            _write_record(fp, encode_meshgraphnets_record(traj, features, field_names, file=path, name=name))
    return path


# ============================================================================ metadata
def guess_domain(field_names: Iterable[str], cell_size: int, simulator: object = None) -> str:
    """A domain name for a dataset from its fields (density: airfoil; velocity: flow;
    world_pos: cloth on triangles, solid on tetrahedra) or, failing that, its solver."""
    names = set(field_names)
    if "density" in names:
        return "airfoil"
    if "velocity" in names or "pressure" in names:
        return "flow"
    if "world_pos" in names:
        return "cloth" if cell_size == 3 else "solid"
    return _SIMULATOR_DOMAINS.get(str(simulator).lower(), "unknown")


def mesh_metadata_from_meshgraphnets(meta: Mapping[str, Any], node_types: Iterable[int], *,
                                     num_frames: int | None = None,
                                     source: object = None) -> MeshMetadata:
    """Canonical metadata for a converted ``meshgraphnets`` dataset.

    The target is ``world_pos`` with order 2 when present (Lagrangian cloth and solids), else
    ``velocity`` with order 1 (Eulerian flow), else the first dynamic field with order 1;
    ``pressure`` is an output when present. ``collision_radius`` becomes
    ``world_edge_radius``; the other top-level keys of ``meta.json`` (``simulator``,
    ``trajectory_length``, ...) are kept in ``generator``.

    Args:
        meta: the ``meta.json`` object.
        node_types: the node type ids found in the data (declared by name).
        num_frames: frames per trajectory, used when ``meta`` has no ``trajectory_length``.
        source: the ``meta.json`` path, for error messages.
    """
    features = parse_meshgraphnets_features(meta, source)
    if "dt" not in meta:
        raise GnsInputError("meta.json lacks the time step", file=source, key="dt")
    cell_size = features["cells"].shape[-1]
    cell_type = {k: t for t, k in CELL_TYPES.items()}.get(cell_size)
    if cell_type is None:
        raise GnsInputError("cells must have 3 (triangle) or 4 (tetrahedron) nodes", file=source,
                            key="features/cells/shape", expected="[..., 3] or [..., 4]",
                            found=list(features["cells"].shape))
    fields = {n: MeshFieldSpec(spec.shape[-1], spec.type != "static")
              for n, spec in features.items() if n not in MESH_ARRAYS}
    dynamic = [n for n, spec in fields.items() if spec.dynamic]
    if not dynamic:
        raise GnsInputError("no dynamic feature to predict", file=source, key="features",
                            expected="a dynamic or dynamic_varlen feature",
                            found=sorted(features))
    if "world_pos" in dynamic:
        target = MeshTarget("world_pos", 2)
    elif "velocity" in dynamic:
        target = MeshTarget("velocity", 1)
    else:
        target = MeshTarget(dynamic[0], 1)
    frames = meta.get("trajectory_length", num_frames)
    radius = meta.get("collision_radius")
    return MeshMetadata(
        domain=guess_domain(features, cell_size, meta.get("simulator")),
        dt=float(meta["dt"]),
        mesh_dim=features["mesh_pos"].shape[-1],
        cell_type=cell_type,
        node_types={node_type_name(t): int(t) for t in sorted(set(int(t) for t in node_types))},
        fields=fields,
        target=target,
        outputs=["pressure"] if "pressure" in dynamic else [],
        sequence_length=int(frames) - 1 if frames and int(frames) > 1 else None,
        varlen=[n for n, spec in features.items()
                if spec.type == "dynamic_varlen" or (spec.type == "dynamic" and n in MESH_ARRAYS)],
        world_edge_radius=(float(radius) if isinstance(radius, (int, float))
                           and not isinstance(radius, bool) and radius > 0 else None),
        generator={"converted_from": "deepmind meshgraphnets",
                   **{k: v for k, v in meta.items()
                      if k not in ("features", "field_names", "collision_radius", "dt")}},
    )


def meshgraphnets_meta_from_mesh(metadata: MeshMetadata, trajectory_length: int) -> dict[str, Any]:
    """The ``meta.json`` object that lays out a canonical mesh dataset as DeepMind does.

    Args:
        metadata: the canonical metadata.
        trajectory_length: frames per trajectory (DeepMind's dynamic shapes fix it).
    """
    def feature(name: str, width: int, dynamic: bool, dtype: str) -> dict[str, Any]:
        if name in metadata.varlen:
            return {"type": "dynamic_varlen", "shape": [-1, width], "dtype": dtype}
        if dynamic:
            return {"type": "dynamic", "shape": [trajectory_length, -1, width], "dtype": dtype}
        return {"type": "static", "shape": [1, -1, width], "dtype": dtype}

    features = {
        "cells": feature("cells", metadata.cell_size, False, "int32"),
        "mesh_pos": feature("mesh_pos", metadata.mesh_dim, False, "float32"),
        "node_type": feature("node_type", 1, False, "int32"),
        **{n: feature(n, spec.dim, spec.dynamic, "float32") for n, spec in metadata.fields.items()},
    }
    field_names = []
    for name in features:
        field_names.append(name)
        if features[name]["type"] == "dynamic_varlen":
            field_names.append(LENGTH_PREFIX + name)
    generator = metadata.generator or {}
    meta: dict[str, Any] = {
        "simulator": generator.get("simulator", metadata.domain),
        "dt": metadata.dt,
        "collision_radius": metadata.world_edge_radius,
        "features": features,
        "field_names": field_names,
        "trajectory_length": trajectory_length,
    }
    return meta


# ============================================================================ conversion
def convert_meshgraphnets(src_dir: str | os.PathLike, dst_dir: str | os.PathLike,
                          splits: Iterable[str] | None = None, progress: bool = False,
                          verify_crc: bool = True) -> Path:
    """Convert a DeepMind ``meshgraphnets`` dataset to the canonical mesh format.

    Every split (or those in ``splits``) is streamed record by record into
    ``<dst_dir>/<split>.h5``; then ``metadata.json`` is written, declaring the node types
    found in the data (see ``mesh_metadata_from_meshgraphnets`` for the other keys).

    Returns:
        ``dst_dir`` as a Path.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    meta = load_meshgraphnets_meta(src)
    source = src / META_FILE
    # Fails early (before any file is written) on a meta.json we cannot describe.
    mesh_metadata_from_meshgraphnets(meta, [0], source=source)
    wanted = list(splits) if splits is not None else available_splits(src, TFRECORD_SUFFIX)
    if not wanted:
        raise GnsInputError("no .tfrecord split files to convert", file=src,
                            expected="train/valid/test.tfrecord", found=_listing(src))
    _check_splits(src, wanted, TFRECORD_SUFFIX)
    node_types: set[int] = set()
    frames: list[int] = []

    def watch(trajectories: Iterable[MeshTrajectory]) -> Iterator[MeshTrajectory]:
        for traj in trajectories:
            node_types.update(np.unique(traj.node_type).tolist())
            frames.append(traj.num_frames)
            yield traj

    for split in wanted:
        reader = MeshgraphnetsSplit(src / f"{split}{TFRECORD_SUFFIX}", meta, verify_crc)
        bar = tqdm(reader, total=len(reader), desc=f"{split} -> h5", unit="traj",
                   disable=no_bar(progress))
        write_mesh_split(dst / f"{split}{H5_SUFFIX}", watch(bar))
    metadata = mesh_metadata_from_meshgraphnets(meta, node_types or [0],
                                                num_frames=frames[0] if frames else None,
                                                source=source)
    save_mesh_metadata(metadata, dst)
    return dst


def export_meshgraphnets(src_dir: str | os.PathLike, dst_dir: str | os.PathLike,
                         splits: Iterable[str] | None = None, progress: bool = False) -> Path:
    """Write a canonical mesh dataset in DeepMind's ``meshgraphnets`` layout.

    Every trajectory must have the same number of frames (DeepMind's ``meta.json`` fixes it).

    Returns:
        ``dst_dir`` as a Path.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    metadata = load_mesh_metadata(src)
    wanted = list(splits) if splits is not None else available_splits(src)
    _check_splits(src, wanted, H5_SUFFIX)
    trajectory_length = (metadata.sequence_length + 1 if metadata.sequence_length is not None
                         else None)
    for split in wanted:
        with open_mesh_split(src, split, metadata) as reader:
            if trajectory_length is None and len(reader):
                trajectory_length = reader.num_frames(0)
            for i in range(len(reader)):
                if reader.num_frames(i) != trajectory_length:
                    raise GnsInputError("DeepMind's layout needs one trajectory length for the "
                                        "whole dataset", file=reader.path,
                                        key=reader.keys()[i],
                                        expected=f"{trajectory_length} frames",
                                        found=f"{reader.num_frames(i)} frames")
            meta = meshgraphnets_meta_from_mesh(metadata, trajectory_length or 1)
            bar = tqdm(reader, total=len(reader), desc=f"{split} -> tfrecord", unit="traj",
                       disable=no_bar(progress))
            write_meshgraphnets_split(dst / f"{split}{TFRECORD_SUFFIX}", bar, meta)
    save_meshgraphnets_meta(meshgraphnets_meta_from_mesh(metadata, trajectory_length or 1), dst)
    return dst


__all__ = [
    "FEATURE_TYPES", "LENGTH_PREFIX", "META_FILE", "MeshgraphnetsSplit", "MgnFeature",
    "convert_meshgraphnets", "decode_meshgraphnets_record", "encode_meshgraphnets_record",
    "export_meshgraphnets", "guess_domain", "is_meshgraphnets_dataset",
    "load_meshgraphnets_meta", "mesh_metadata_from_meshgraphnets",
    "meshgraphnets_meta_from_mesh", "parse_meshgraphnets_features", "read_meshgraphnets_split",
    "save_meshgraphnets_meta", "write_meshgraphnets_split",
]

"""The canonical mesh dataset format (``docs/mesh_format.md``): metadata, validation, lazy HDF5.

Layout, beside the particle format of ``gns.data.hdf5``::

    <dataset>/metadata.json                    "kind": "mesh" (``MeshMetadata``)
    <dataset>/{train,valid,test}.h5
        /00000/mesh_pos     float32 (N, Dm)     rest / reference coordinates
        /00000/cells        int32   (C, K)      K = 3 triangles, 4 tetrahedra
        /00000/node_type    int32   (N,)        DeepMind ``NodeType`` ids
        /00000/<field>      float32 (T, N, F)   each dynamic per-node field (chunked along time)
        /00000/<field>      float32 (N, F)      each static per-node field
        /00001/...

An array whose size changes over time (DeepMind ``dynamic_varlen``: remeshed meshes) is stored
flattened over time, ``(sum_t R_t, F)``, beside ``<name>_row_lengths`` int32 ``(T,)`` holding
``R_t``. This applies to ``mesh_pos``, ``cells`` and ``node_type`` as much as to the fields.

``MeshSplit`` reads lazily, like ``TrajectorySplit``: it keeps the file open, validates each
trajectory's structure (and its static arrays' values) on first access, and checks the
finiteness of dynamic data only on what a read touches, so a window read costs one window.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from gns.data.hdf5 import TIME_CHUNK, LazyH5Split, existing_split_path, replacing_h5
from gns.atomic import write_json_atomic
from gns.data.metadata import METADATA_FILE, _as_float, _as_int, _listing
from gns.errors import GnsInputError

# DeepMind ``meshgraphnets`` ``common.NodeType``: the ids every published mesh dataset uses.
NODE_TYPES: dict[str, int] = {
    "NORMAL": 0, "OBSTACLE": 1, "AIRFOIL": 2, "HANDLE": 3, "INFLOW": 4, "OUTFLOW": 5,
    "WALL_BOUNDARY": 6,
}
# Size of DeepMind's node-type one-hot (``NodeType.SIZE``): ids must lie in [0, 9).
NUM_NODE_TYPES = 9
MESH_KIND = "mesh"
CELL_TYPES: dict[str, int] = {"triangle": 3, "tetra": 4}  # cell type -> nodes per cell K
MESH_ARRAYS = ("mesh_pos", "cells", "node_type")
ROW_LENGTHS_SUFFIX = "_row_lengths"
TARGET_ORDERS = (1, 2)  # 1: change of the field per step, 2: acceleration of a position field

# A flattened (remeshed) array is chunked by this many rows per frame on average times
# TIME_CHUNK, so that a training window still touches one or two chunks.
_MIN_ROW_CHUNK = 256


def node_type_name(type_id: int) -> str:
    """The DeepMind name of a node type id (``"TYPE_<id>"`` for the unnamed ids 7 and 8)."""
    for name, value in NODE_TYPES.items():
        if value == type_id:
            return name
    return f"TYPE_{int(type_id)}"


# ============================================================================ metadata
@dataclass(frozen=True)
class MeshFieldSpec:
    """How one per-node field is stored: its width and whether it changes over time."""

    dim: int  # F: values per node
    dynamic: bool = True  # True: (T, N, F) per frame; False: (N, F) once per trajectory

    def to_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "dynamic": self.dynamic}


@dataclass(frozen=True)
class MeshTarget:
    """What a simulator predicts for a mesh dataset."""

    field: str  # a dynamic field, e.g. "world_pos" or "velocity"
    order: int  # 2: acceleration of a position field (cloth); 1: change per step (flow)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "order": self.order}


@dataclass(frozen=True)
class MeshMetadata:
    """Everything about a mesh dataset that is not a trajectory (``metadata.json``).

    Unknown keys are kept in ``extra`` and written back, so a load/save round trip loses
    nothing. ``sequence_length`` counts steps (frames - 1), as for particle datasets.
    """

    domain: str  # free text: cloth | flow | airfoil | solid | ...
    dt: float  # seconds between two stored frames
    mesh_dim: int  # Dm: columns of mesh_pos
    cell_type: str  # "triangle" (K = 3) or "tetra" (K = 4)
    node_types: dict[str, int]  # the node types the dataset declares; any other id is an error
    fields: dict[str, MeshFieldSpec]  # every per-node field besides mesh_pos/cells/node_type
    target: MeshTarget  # the field the model integrates, and how
    outputs: list[str] = field(default_factory=list)  # fields predicted directly (pressure)
    inputs: list[str] = field(default_factory=list)  # fields a model reads but does not predict (cloth: wind)
    sequence_length: int | None = None  # steps per trajectory (frames - 1)
    varlen: list[str] = field(default_factory=list)  # arrays stored flattened over time
    world_edge_radius: float | None = None  # contact radius for world edges, if any
    generator: dict[str, Any] | None = None  # provenance (solver, version, seed, ...), free form
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, preserved verbatim

    def __post_init__(self) -> None:
        _validate_mesh_metadata(self, source=None)

    @property
    def cell_size(self) -> int:
        """K: nodes per cell."""
        return CELL_TYPES[self.cell_type]

    @property
    def dynamic_fields(self) -> list[str]:
        """Names of the fields that change over time, in declaration order."""
        return [name for name, spec in self.fields.items() if spec.dynamic]

    @property
    def static_fields(self) -> list[str]:
        """Names of the per-node fields stored once per trajectory."""
        return [name for name, spec in self.fields.items() if not spec.dynamic]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for ``metadata.json`` (unset optional keys are left out)."""
        out: dict[str, Any] = {
            "kind": MESH_KIND,
            "domain": self.domain,
            "dt": self.dt,
            "mesh_dim": self.mesh_dim,
            "cell_type": self.cell_type,
            "node_types": dict(self.node_types),
            "fields": {name: spec.to_dict() for name, spec in self.fields.items()},
            "target": self.target.to_dict(),
            "outputs": list(self.outputs),
        }
        if self.inputs:
            out["inputs"] = list(self.inputs)
        if self.sequence_length is not None:
            out["sequence_length"] = self.sequence_length
        if self.varlen:
            out["varlen"] = list(self.varlen)
        if self.world_edge_radius is not None:
            out["world_edge_radius"] = self.world_edge_radius
        if self.generator is not None:
            out["generator"] = self.generator
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: object = None) -> "MeshMetadata":
        """Parse and validate a mesh ``metadata.json`` object.

        Raises:
            GnsInputError: not a mesh dataset, a missing key, or a value of the wrong type or
                range; the message names ``source`` and the key.
        """
        if not isinstance(d, Mapping):
            raise GnsInputError("metadata must be a JSON object", file=source,
                                expected="object", found=type(d).__name__)
        if d.get("kind") != MESH_KIND:
            raise GnsInputError("not a mesh dataset", file=source, key="kind",
                                expected=f'"{MESH_KIND}"', found=repr(d.get("kind")))
        for key in ("dt", "mesh_dim", "cell_type", "node_types", "fields", "target"):
            if key not in d:
                raise GnsInputError("missing required metadata key", file=source, key=key)
        return cls(**_parse_mesh_metadata(d, source), extra=_extra_keys(d))


_MESH_OWN_KEYS = frozenset({"kind", "domain", "dt", "mesh_dim", "cell_type", "node_types",
                            "fields", "target", "outputs", "inputs", "sequence_length", "varlen",
                            "world_edge_radius", "generator"})


def _extra_keys(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in _MESH_OWN_KEYS}


def _parse_mesh_metadata(d: Mapping[str, Any], source: object) -> dict[str, Any]:
    """Typed values of the keys ``MeshMetadata`` owns (range checks follow in the class)."""
    def mapping(key: str) -> Mapping[str, Any]:
        if not isinstance(d[key], Mapping):
            raise GnsInputError("must be a JSON object", file=source, key=key,
                                expected="object", found=repr(d[key]))
        return d[key]

    fields = {}
    for name, spec in mapping("fields").items():
        if not isinstance(spec, Mapping) or "dim" not in spec:
            raise GnsInputError('each field needs {"dim": F, "dynamic": true|false}',
                                file=source, key=f"fields/{name}",
                                expected='{"dim": F, "dynamic": true|false}', found=repr(spec))
        dynamic = spec.get("dynamic", True)
        if not isinstance(dynamic, bool):
            raise GnsInputError("must be true or false", file=source,
                                key=f"fields/{name}/dynamic", expected="true or false",
                                found=repr(dynamic))
        fields[name] = MeshFieldSpec(_as_int(spec["dim"], f"fields/{name}/dim", source), dynamic)
    target = mapping("target")
    if "field" not in target or "order" not in target:
        raise GnsInputError('target needs {"field": name, "order": 1|2}', file=source,
                            key="target", expected='{"field": name, "order": 1|2}',
                            found=repr(dict(target)))
    node_types = {str(name): _as_int(value, f"node_types/{name}", source)
                  for name, value in mapping("node_types").items()}
    values: dict[str, Any] = {
        "domain": str(d.get("domain", "unknown")),
        "dt": _as_float(d["dt"], "dt", source),
        "mesh_dim": _as_int(d["mesh_dim"], "mesh_dim", source),
        "cell_type": d["cell_type"],
        "node_types": node_types,
        "fields": fields,
        "target": MeshTarget(str(target["field"]), _as_int(target["order"], "target/order",
                                                           source)),
        "outputs": _as_names(d.get("outputs", []), "outputs", source),
        "inputs": _as_names(d.get("inputs", []), "inputs", source),
        "sequence_length": (None if d.get("sequence_length") is None
                            else _as_int(d["sequence_length"], "sequence_length", source)),
        "varlen": _as_names(d.get("varlen", []), "varlen", source),
        "world_edge_radius": (None if d.get("world_edge_radius") is None
                              else _as_float(d["world_edge_radius"], "world_edge_radius", source)),
        "generator": d.get("generator"),
    }
    _check_mesh_values(values, source)  # here, so that errors name the file
    return values


def _as_names(value: Any, key: str, source: object) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise GnsInputError("must be a list of names", file=source, key=key,
                            expected="list of strings", found=repr(value))
    return list(value)


def _validate_mesh_metadata(meta: MeshMetadata, source: object) -> None:
    _check_mesh_values({name: getattr(meta, name) for name in _MESH_OWN_KEYS - {"kind"}}, source)


def _check_mesh_values(v: Mapping[str, Any], source: object) -> None:
    """Ranges and cross-references of already-typed metadata values."""
    if not (np.isfinite(v["dt"]) and v["dt"] > 0):
        raise GnsInputError("must be a finite positive number", file=source, key="dt",
                            expected="> 0", found=v["dt"])
    if v["mesh_dim"] not in (2, 3):
        raise GnsInputError("mesh_pos must have 2 or 3 columns", file=source, key="mesh_dim",
                            expected="2 or 3", found=v["mesh_dim"])
    if v["cell_type"] not in CELL_TYPES:
        raise GnsInputError("unknown cell type", file=source, key="cell_type",
                            expected=" or ".join(CELL_TYPES), found=repr(v["cell_type"]))
    if not v["node_types"]:
        raise GnsInputError("declare at least one node type", file=source, key="node_types",
                            expected='e.g. {"NORMAL": 0}', found="{}")
    bad = {name: t for name, t in v["node_types"].items() if not 0 <= t < NUM_NODE_TYPES}
    if bad:
        raise GnsInputError(f"node type ids must lie in [0, {NUM_NODE_TYPES})", file=source,
                            key="node_types", expected=f"0 <= id < {NUM_NODE_TYPES}", found=bad)
    fields: Mapping[str, MeshFieldSpec] = v["fields"]
    for name, spec in fields.items():
        if name in MESH_ARRAYS or name.endswith(ROW_LENGTHS_SUFFIX) or "/" in name or not name:
            raise GnsInputError("reserved or invalid field name", file=source,
                                key=f"fields/{name}",
                                expected=f"not one of {MESH_ARRAYS}, no '/', no "
                                         f"'{ROW_LENGTHS_SUFFIX}' ending", found=repr(name))
        if spec.dim < 1:
            raise GnsInputError("must be positive", file=source, key=f"fields/{name}/dim",
                                expected=">= 1", found=spec.dim)
    target: MeshTarget = v["target"]
    dynamic = [name for name, spec in fields.items() if spec.dynamic]
    if target.field not in dynamic:
        raise GnsInputError("the target must be a dynamic field", file=source,
                            key="target/field", expected=f"one of {dynamic}",
                            found=repr(target.field))
    if target.order not in TARGET_ORDERS:
        raise GnsInputError("unknown target order", file=source, key="target/order",
                            expected="1 (change per step) or 2 (acceleration)", found=target.order)
    unknown = [name for name in v["outputs"] if name not in fields]
    if unknown:
        raise GnsInputError("outputs must be declared fields", file=source, key="outputs",
                            expected=f"names from {list(fields)}", found=unknown)
    unknown = [name for name in v["inputs"] if name not in fields]
    if unknown:
        raise GnsInputError("inputs must be declared fields", file=source, key="inputs",
                            expected=f"names from {list(fields)}", found=unknown)
    predicted = [name for name in v["inputs"] if name == target.field or name in v["outputs"]]
    if predicted:
        raise GnsInputError("a field cannot be both an input and predicted (target or outputs)",
                            file=source, key="inputs", expected="fields other than the target and outputs",
                            found=predicted)
    unknown = [name for name in v["varlen"]
               if name not in MESH_ARRAYS and name not in dynamic]
    if unknown:
        raise GnsInputError("only mesh arrays and dynamic fields can vary in length",
                            file=source, key="varlen",
                            expected=f"names from {[*MESH_ARRAYS, *dynamic]}", found=unknown)
    if v["sequence_length"] is not None and v["sequence_length"] < 1:
        raise GnsInputError("must be a positive number of steps", file=source,
                            key="sequence_length", expected=">= 1", found=v["sequence_length"])
    radius = v["world_edge_radius"]
    if radius is not None and not (np.isfinite(radius) and radius > 0):
        raise GnsInputError("must be a finite positive number", file=source,
                            key="world_edge_radius", expected="> 0", found=radius)
    if v["generator"] is not None and not isinstance(v["generator"], Mapping):
        raise GnsInputError("must be a JSON object", file=source, key="generator",
                            expected="object", found=repr(v["generator"]))


def _read_json(path: Path) -> Any:
    try:
        with path.open("r", encoding="utf-8") as fp:
            return json.load(fp)
    except json.JSONDecodeError as exc:
        raise GnsInputError(f"not valid JSON: {exc}", file=path) from None


def load_mesh_metadata(dataset_dir: str | os.PathLike) -> MeshMetadata:
    """Read and validate ``<dataset_dir>/metadata.json`` of a mesh dataset.

    Raises:
        GnsInputError: the file is missing, not JSON, not ``"kind": "mesh"``, or a key is
            missing or invalid; the message names the file and the key.
    """
    path = Path(dataset_dir) / METADATA_FILE
    if not path.is_file():
        raise GnsInputError("dataset has no metadata file", file=path,
                            expected=f"{METADATA_FILE} beside the split files",
                            found=_listing(Path(dataset_dir)))
    return MeshMetadata.from_dict(_read_json(path), source=path)


def save_mesh_metadata(meta: MeshMetadata, dataset_dir: str | os.PathLike) -> Path:
    """Write ``<dataset_dir>/metadata.json`` atomically (temporary file, then ``os.replace``)."""
    return write_json_atomic(Path(dataset_dir) / METADATA_FILE, meta.to_dict())


def is_mesh_dataset(dataset_dir: str | os.PathLike) -> bool:
    """True when ``<dataset_dir>/metadata.json`` is a JSON object with ``"kind": "mesh"``."""
    path = Path(dataset_dir) / METADATA_FILE
    if not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == MESH_KIND


# ============================================================================ trajectories
@dataclass(eq=False)
class MeshTrajectory:
    """One mesh trajectory (or a time window of one), in memory.

    An array named in ``row_lengths`` is stored flattened over time: ``(sum_t R_t, ...)``
    with ``row_lengths[name]`` the ``(T,)`` rows ``R_t`` of each frame (remeshed datasets).

    Attributes:
        mesh_pos: ``(N, Dm)`` float32 mesh-space (rest) coordinates.
        cells: ``(C, K)`` int64 node indices per cell (K = 3 triangles, 4 tetrahedra).
        node_type: ``(N,)`` int64 DeepMind ``NodeType`` ids.
        fields: name -> ``(T, N, F)`` float32 dynamic per-node fields.
        static_fields: name -> ``(N, F)`` float32 per-node fields that do not change.
        row_lengths: name -> ``(T,)`` int64 rows per frame of each flattened array.
        key: the trajectory's name in its source (e.g. ``"00003"``), or None.
    """

    mesh_pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    static_fields: dict[str, np.ndarray] = field(default_factory=dict)
    row_lengths: dict[str, np.ndarray] = field(default_factory=dict)
    key: str | None = None

    @property
    def is_varlen(self) -> bool:
        """True when some array changes size over time (a remeshed trajectory)."""
        return bool(self.row_lengths)

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        for lengths in self.row_lengths.values():
            return int(len(lengths))
        for values in self.fields.values():
            return int(values.shape[0])
        return 0

    def nodes_per_frame(self) -> np.ndarray:
        """``(T,)`` int64 node count of each frame."""
        if "mesh_pos" in self.row_lengths:
            return np.asarray(self.row_lengths["mesh_pos"], dtype=np.int64)
        return np.full(self.num_frames, len(self.mesh_pos), dtype=np.int64)

    @property
    def num_nodes(self) -> int:
        """N; for a remeshed trajectory, the largest node count of any frame."""
        counts = self.nodes_per_frame()
        return int(counts.max()) if len(counts) else int(len(self.mesh_pos))

    def array(self, name: str) -> np.ndarray:
        """Any stored array by name: a mesh array, a dynamic or a static field."""
        if name in MESH_ARRAYS:
            return getattr(self, name)
        if name in self.fields:
            return self.fields[name]
        if name in self.static_fields:
            return self.static_fields[name]
        raise KeyError(name)

    def frames(self, name: str) -> list[np.ndarray]:
        """One array per frame of a dynamic field or a flattened array."""
        values = self.array(name)
        if name in self.row_lengths:
            return split_rows(values, self.row_lengths[name])
        if name in self.fields:
            return list(values)
        return [values] * self.num_frames


def split_rows(values: np.ndarray, row_lengths: np.ndarray) -> list[np.ndarray]:
    """Cut a flattened ``(sum_t R_t, ...)`` array into its T frames."""
    offsets = np.cumsum(np.asarray(row_lengths, dtype=np.int64))[:-1]
    return np.split(values, offsets)


# ============================================================================ validation
@dataclass
class _Layout:
    """Shapes of one trajectory, established by ``_check_structure``."""

    num_frames: int
    nodes: np.ndarray  # (T,) node count per frame
    dynamic: list[str]  # dynamic field names
    static: list[str]  # static field names
    varlen: list[str]  # names of flattened arrays


def _shape_text(shape: Sequence[int]) -> str:
    return f"shape {tuple(int(s) for s in shape)}"


def _check_row_lengths(row_lengths: Mapping[str, np.ndarray], *, file: object,
                       name: str) -> int:
    """Row lengths must be 1-D non-negative integers of one common length T; returns T."""
    frames = None
    for array_name, lengths in row_lengths.items():
        key = f"{name}/{array_name}{ROW_LENGTHS_SUFFIX}"
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
            raise GnsInputError("row lengths must be a 1-D array of non-negative integers",
                                file=file, key=key, expected="int32 (T,)",
                                found=f"{lengths.dtype.name} {_shape_text(lengths.shape)}")
        if frames is not None and len(lengths) != frames:
            raise GnsInputError("arrays disagree on the number of frames", file=file, key=key,
                                expected=f"T = {frames}", found=f"T = {len(lengths)}")
        frames = len(lengths)
    return -1 if frames is None else frames


def _check_structure(mesh: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                     dynamic: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                     static: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                     row_lengths: Mapping[str, np.ndarray], meta: MeshMetadata | None, *,
                     file: object, name: str) -> _Layout:
    """Check shapes, dtypes and cross-array consistency without looking at any values.

    Args:
        mesh: ``(shape, dtype)`` of ``mesh_pos``, ``cells`` and ``node_type``.
        dynamic, static: ``(shape, dtype)`` of the dynamic and static fields.
        row_lengths: ``(T,)`` rows per frame of every flattened array.
        meta: the dataset's metadata, or None for the metadata-free checks only.
        file, name: where the trajectory lives, for error messages.
    """
    for array_name in row_lengths:
        if array_name not in MESH_ARRAYS and array_name not in dynamic:
            raise GnsInputError("row lengths for an array that is neither a mesh array nor a "
                                "dynamic field", file=file,
                                key=f"{name}/{array_name}{ROW_LENGTHS_SUFFIX}",
                                expected=f"one of {[*MESH_ARRAYS, *dynamic]}",
                                found=repr(array_name))
    frames = _check_row_lengths(row_lengths, file=file, name=name)
    for array_name, (shape, dtype) in dynamic.items():
        key = f"{name}/{array_name}"
        expected_ndim = 2 if array_name in row_lengths else 3
        layout = "(sum_t N_t, F)" if array_name in row_lengths else "(T, N, F)"
        if len(shape) != expected_ndim or np.dtype(dtype).kind != "f":
            raise GnsInputError(f"a dynamic field must be a floating-point {layout} array",
                                file=file, key=key, expected=f"float32 {layout}",
                                found=f"{np.dtype(dtype).name} {_shape_text(shape)}")
        if array_name not in row_lengths:
            if frames >= 0 and shape[0] != frames:
                raise GnsInputError("fields disagree on the number of frames", file=file,
                                    key=key, expected=f"T = {frames}", found=f"T = {shape[0]}")
            frames = shape[0]
    if frames < 1:
        raise GnsInputError("a trajectory needs at least one dynamic field with one frame or "
                            "more", file=file, key=name, expected="T >= 1",
                            found=f"dynamic fields {sorted(dynamic)}")

    pos_shape, pos_dtype = mesh["mesh_pos"]
    if len(pos_shape) != 2 or np.dtype(pos_dtype).kind != "f":
        raise GnsInputError("mesh_pos must be a floating-point (N, Dm) array", file=file,
                            key=f"{name}/mesh_pos", expected="float32 (N, Dm)",
                            found=f"{np.dtype(pos_dtype).name} {_shape_text(pos_shape)}")
    if meta is not None and pos_shape[1] != meta.mesh_dim:
        raise GnsInputError(f"mesh_pos has the wrong number of columns (metadata mesh_dim="
                            f"{meta.mesh_dim})", file=file, key=f"{name}/mesh_pos",
                            expected=f"(N, {meta.mesh_dim})", found=_shape_text(pos_shape))
    nodes = _rows_per_frame("mesh_pos", pos_shape[0], row_lengths, frames, file=file, name=name)

    def check_node_rows(array_name: str, shape: tuple[int, ...], axis: int) -> None:
        """A node-indexed array must have as many rows per frame as mesh_pos."""
        rows = _rows_per_frame(array_name, shape[axis], row_lengths, frames, file=file,
                               name=name)
        if not np.array_equal(rows, nodes):
            bad = int(np.argmax(rows != nodes))
            raise GnsInputError("node count differs from mesh_pos", file=file,
                                key=f"{name}/{array_name}",
                                expected=f"{int(nodes[bad])} nodes at frame {bad}",
                                found=f"{int(rows[bad])} ({_shape_text(shape)})")

    type_shape, type_dtype = mesh["node_type"]
    if len(type_shape) != 1 or np.dtype(type_dtype).kind not in "iu":
        raise GnsInputError("node_type must be a 1-D integer array", file=file,
                            key=f"{name}/node_type", expected="int32 (N,)",
                            found=f"{np.dtype(type_dtype).name} {_shape_text(type_shape)}")
    check_node_rows("node_type", type_shape, 0)

    cell_shape, cell_dtype = mesh["cells"]
    sizes = [meta.cell_size] if meta is not None else sorted(set(CELL_TYPES.values()))
    if (len(cell_shape) != 2 or np.dtype(cell_dtype).kind not in "iu"
            or cell_shape[1] not in sizes):
        raise GnsInputError("cells must be a (C, K) integer array of node indices", file=file,
                            key=f"{name}/cells",
                            expected=f"int32 (C, {' or '.join(map(str, sizes))})",
                            found=f"{np.dtype(cell_dtype).name} {_shape_text(cell_shape)}")
    _rows_per_frame("cells", cell_shape[0], row_lengths, frames, file=file, name=name)

    for array_name, (shape, dtype) in dynamic.items():
        check_node_rows(array_name, shape, 0 if array_name in row_lengths else 1)
    for array_name, (shape, dtype) in static.items():
        if len(shape) != 2 or np.dtype(dtype).kind != "f":
            raise GnsInputError("a static field must be a floating-point (N, F) array",
                                file=file, key=f"{name}/{array_name}", expected="float32 (N, F)",
                                found=f"{np.dtype(dtype).name} {_shape_text(shape)}")
        check_node_rows(array_name, shape, 0)
    if meta is not None:
        _check_against_metadata(dynamic, static, row_lengths, meta, file=file, name=name)
    return _Layout(frames, nodes, list(dynamic), list(static), list(row_lengths))


def _rows_per_frame(array_name: str, rows: int, row_lengths: Mapping[str, np.ndarray],
                    frames: int, *, file: object, name: str) -> np.ndarray:
    """``(T,)`` rows of each frame; a flattened array's lengths must add up to its rows."""
    if array_name not in row_lengths:
        return np.full(frames, rows, dtype=np.int64)
    lengths = np.asarray(row_lengths[array_name], dtype=np.int64)
    if int(lengths.sum()) != rows:
        raise GnsInputError("row lengths do not add up to the flattened array's rows",
                            file=file, key=f"{name}/{array_name}{ROW_LENGTHS_SUFFIX}",
                            expected=f"sum = {rows}", found=f"sum = {int(lengths.sum())}")
    return lengths


def _check_against_metadata(dynamic: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                            static: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                            row_lengths: Mapping[str, np.ndarray], meta: MeshMetadata, *,
                            file: object, name: str) -> None:
    """Declared fields present with their declared width and kind; nothing undeclared."""
    for field_name, spec in meta.fields.items():
        where = dynamic if spec.dynamic else static
        other = static if spec.dynamic else dynamic
        kind = "dynamic" if spec.dynamic else "static"
        if field_name in other:
            raise GnsInputError(f"metadata declares a {kind} field", file=file,
                                key=f"{name}/{field_name}",
                                expected="(T, N, F)" if spec.dynamic else "(N, F)",
                                found=_shape_text(other[field_name][0]))
        if field_name not in where:
            raise GnsInputError("trajectory lacks a field the metadata declares", file=file,
                                key=f"{name}/{field_name}", expected=f"{kind} field "
                                f"'{field_name}'", found=sorted([*dynamic, *static]))
        width = where[field_name][0][-1]
        if width != spec.dim:
            raise GnsInputError(f"field width differs from metadata (dim={spec.dim})",
                                file=file, key=f"{name}/{field_name}",
                                expected=f"last axis {spec.dim}",
                                found=_shape_text(where[field_name][0]))
    undeclared = sorted((set(dynamic) | set(static)) - set(meta.fields))
    if undeclared:
        raise GnsInputError("trajectory has a field the metadata does not declare", file=file,
                            key=f"{name}/{undeclared[0]}",
                            expected=f"fields {sorted(meta.fields)}", found=undeclared)
    if sorted(row_lengths) != sorted(meta.varlen):
        raise GnsInputError("flattened (variable-length) arrays differ from metadata varlen",
                            file=file, key=f"{name}/*{ROW_LENGTHS_SUFFIX}",
                            expected=sorted(meta.varlen), found=sorted(row_lengths))


def _check_mesh_arrays(mesh_pos: np.ndarray, cells: np.ndarray, node_type: np.ndarray,
                       row_lengths: Mapping[str, np.ndarray], layout: _Layout,
                       meta: MeshMetadata | None, *, file: object, name: str) -> None:
    """Value checks of the mesh: finite positions, cell indices in range, declared types."""
    check_finite(mesh_pos, file=file, key=f"{name}/mesh_pos", axes=("node", "component"))
    if cells.size:
        if "cells" in row_lengths:
            # Each frame's cells index that frame's nodes.
            limit = np.repeat(layout.nodes, np.asarray(row_lengths["cells"], dtype=np.int64))
        else:
            limit = np.full(len(cells), layout.nodes.min() if len(layout.nodes) else 0)
        bad = (cells < 0) | (cells >= limit[:, None])
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise GnsInputError(f"cell {row} refers to a node that does not exist", file=file,
                                key=f"{name}/cells",
                                expected=f"0 <= index < {int(limit[row])}",
                                found=int(cells[row, col]))
    allowed = (sorted(meta.node_types.values()) if meta is not None
               else list(range(NUM_NODE_TYPES)))
    present = np.unique(node_type)
    bad_types = [int(t) for t in present if int(t) not in allowed]
    if bad_types:
        declared = dict(meta.node_types) if meta is not None else f"ids in [0, {NUM_NODE_TYPES})"
        raise GnsInputError("node types not declared in the metadata node_types", file=file,
                            key=f"{name}/node_type", expected=declared, found=bad_types)


def check_finite(values: np.ndarray, *, file: object, key: str, time_offset: int = 0,
                 axes: Sequence[str] = ("time index", "node")) -> None:
    """Raise on the first NaN or inf, naming where it is.

    Args:
        values: the array to check.
        axes: names of its leading axes, for the message (default: ``(T, N, ...)``).
        time_offset: added to the first index when ``axes[0]`` is time (window reads).
    """
    finite = np.isfinite(values)
    if finite.all():
        return
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    offsets = [time_offset if axis == "time index" else 0 for axis in axes]
    where = ", ".join(f"{axis} {index + offset}"
                      for axis, index, offset in zip(axes, first, offsets))
    raise GnsInputError(f"non-finite value at {where}", file=file, key=key,
                        expected="finite values", found=values[first])


def _dtype_info(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in arrays.items()}


def validate_mesh_trajectory(traj: MeshTrajectory, metadata: MeshMetadata | None = None, *,
                             file: object = None, name: str | None = None) -> MeshTrajectory:
    """Check an in-memory mesh trajectory and return it with canonical dtypes.

    Args:
        traj: the trajectory to check.
        metadata: checks declared fields, widths, node types, cell size and ``mesh_dim`` too.
        file, name: where the trajectory comes from or goes to, for error messages.

    Returns:
        A new ``MeshTrajectory`` with float32 positions and fields and int64 cells, node types
        and row lengths.

    Raises:
        GnsInputError: a wrong shape or dtype, inconsistent node or frame counts, a cell index
            out of range, an undeclared node type or a non-finite value.
    """
    name = name or traj.key or "trajectory"
    mesh = {k: np.asarray(getattr(traj, k)) for k in MESH_ARRAYS}
    dynamic = {k: np.asarray(v) for k, v in traj.fields.items()}
    static = {k: np.asarray(v) for k, v in traj.static_fields.items()}
    row_lengths = {k: np.asarray(v) for k, v in traj.row_lengths.items()}
    clash = sorted((set(dynamic) & set(static)) | ((set(dynamic) | set(static)) & set(MESH_ARRAYS)))
    if clash:
        raise GnsInputError("a field name is used twice (or shadows a mesh array)", file=file,
                            key=f"{name}/{clash[0]}")
    layout = _check_structure(_dtype_info(mesh), _dtype_info(dynamic), _dtype_info(static),
                              row_lengths, metadata, file=file, name=name)
    _check_mesh_arrays(mesh["mesh_pos"], mesh["cells"], mesh["node_type"], row_lengths, layout,
                       metadata, file=file, name=name)
    for field_name, values in dynamic.items():
        axes = ("row", "component") if field_name in row_lengths else ("time index", "node")
        check_finite(values, file=file, key=f"{name}/{field_name}", axes=axes)
    for field_name, values in static.items():
        check_finite(values, file=file, key=f"{name}/{field_name}", axes=("node", "component"))
    return MeshTrajectory(
        mesh_pos=mesh["mesh_pos"].astype(np.float32, copy=False),
        cells=mesh["cells"].astype(np.int64, copy=False),
        node_type=mesh["node_type"].astype(np.int64, copy=False),
        fields={k: v.astype(np.float32, copy=False) for k, v in dynamic.items()},
        static_fields={k: v.astype(np.float32, copy=False) for k, v in static.items()},
        row_lengths={k: v.astype(np.int64, copy=False) for k, v in row_lengths.items()},
        key=traj.key,
    )


# ============================================================================ reading
@dataclass
class _Entry:
    """What ``MeshSplit`` keeps about one trajectory after checking it."""

    layout: _Layout
    row_lengths: dict[str, np.ndarray]  # (T,) int64 per flattened array
    offsets: dict[str, np.ndarray]  # (T + 1,) int64 first row of each frame, per flattened array
    fixed: dict[str, np.ndarray]  # arrays read whole: fixed-size mesh arrays, static fields


class MeshSplit(LazyH5Split[MeshTrajectory]):
    """Lazy, random-access view of one mesh split file (``train.h5`` etc.).

    The file stays open between reads; the object pickles as its path and metadata and
    reopens the file on first use in each process (DataLoader workers). Trajectory ``i`` is
    checked when first touched: its structure, and the values of its mesh arrays and static
    fields (which are then cached). Dynamic data are read, and checked for NaN/inf, one window
    at a time.
    """

    metadata: MeshMetadata | None

    def __init__(self, path: str | os.PathLike, metadata: MeshMetadata | None = None) -> None:
        super().__init__(path, metadata)

    def _reset_cache(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def _entry(self, i: int) -> tuple[int, h5py.Group, _Entry]:
        i = self._index(i)
        group = self._h5()[self._keys[i]]
        if i not in self._entries:
            self._entries[i] = self._check_group(group, self._keys[i])
        return i, group, self._entries[i]

    def _check_group(self, group: h5py.Group, key: str) -> _Entry:
        for array_name in MESH_ARRAYS:
            if not isinstance(group.get(array_name), h5py.Dataset):
                raise GnsInputError("trajectory group lacks a dataset", file=self.path,
                                    key=f"{key}/{array_name}", expected=f"dataset '{array_name}'",
                                    found=sorted(group.keys()))
        row_lengths = {n[: -len(ROW_LENGTHS_SUFFIX)]: group[n][()] for n in group
                       if n.endswith(ROW_LENGTHS_SUFFIX)}
        dynamic, static = {}, {}
        for n, item in group.items():
            if n in MESH_ARRAYS or n.endswith(ROW_LENGTHS_SUFFIX):
                continue
            if not isinstance(item, h5py.Dataset) or item.ndim not in (2, 3):
                raise GnsInputError("a field must be a (T, N, F) or (N, F) dataset",
                                    file=self.path, key=f"{key}/{n}",
                                    expected="a 2-D or 3-D dataset",
                                    found=(_shape_text(item.shape) if isinstance(item, h5py.Dataset)
                                           else "a group"))
            is_dynamic = item.ndim == 3 or n in row_lengths
            (dynamic if is_dynamic else static)[n] = (item.shape, item.dtype)
        if self.metadata is not None:
            # HDF5 lists members alphabetically; the metadata's order is the meaningful one.
            rank = {n: i for i, n in enumerate(self.metadata.fields)}
            dynamic = dict(sorted(dynamic.items(), key=lambda kv: rank.get(kv[0], len(rank))))
            static = dict(sorted(static.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        mesh = {n: (group[n].shape, group[n].dtype) for n in MESH_ARRAYS}
        layout = _check_structure(mesh, dynamic, static, row_lengths, self.metadata,
                                  file=self.path, name=key)
        # Mesh arrays are read whole once: cell indices need checking against node counts.
        arrays = {n: group[n][()] for n in MESH_ARRAYS}
        _check_mesh_arrays(arrays["mesh_pos"], arrays["cells"], arrays["node_type"], row_lengths,
                           layout, self.metadata, file=self.path, name=key)
        fixed = {n: _canonical(n, v) for n, v in arrays.items() if n not in row_lengths}
        for n in static:
            values = group[n][()].astype(np.float32, copy=False)
            check_finite(values, file=self.path, key=f"{key}/{n}", axes=("node", "component"))
            fixed[n] = values
        lengths = {n: np.asarray(v, dtype=np.int64) for n, v in row_lengths.items()}
        offsets = {n: np.concatenate([[0], np.cumsum(v)]) for n, v in lengths.items()}
        return _Entry(layout, lengths, offsets, fixed)

    # ------------------------------------------------------------------ reads
    def num_frames(self, i: int) -> int:
        """Number of frames T of trajectory ``i`` (no dynamic data are read)."""
        return self._entry(i)[2].layout.num_frames

    def nodes_per_frame(self, i: int) -> np.ndarray:
        """``(T,)`` node count of each frame of trajectory ``i``."""
        return self._entry(i)[2].layout.nodes.copy()

    def num_nodes(self, i: int) -> int:
        """N of trajectory ``i`` (the largest per-frame count for a remeshed trajectory)."""
        return int(self._entry(i)[2].layout.nodes.max())

    def num_cells(self, i: int) -> int:
        """C of trajectory ``i`` (the largest per-frame count for a remeshed trajectory)."""
        _, group, entry = self._entry(i)
        if "cells" in entry.row_lengths:
            return int(entry.row_lengths["cells"].max())
        return int(group["cells"].shape[0])

    def node_type(self, i: int) -> np.ndarray:
        """Node types of trajectory ``i``: ``(N,)``, or ``(sum_t N_t,)`` when remeshed."""
        _, group, entry = self._entry(i)
        if "node_type" in entry.fixed:
            return entry.fixed["node_type"].copy()
        return group["node_type"][()].astype(np.int64)

    def field_names(self, i: int = 0) -> list[str]:
        """Names of the dynamic fields of trajectory ``i``."""
        return list(self._entry(i)[2].layout.dynamic)

    def read_window(self, i: int, start: int, stop: int,
                    fields: Iterable[str] | None = None) -> MeshTrajectory:
        """Frames ``start:stop`` of the dynamic fields, with the static arrays.

        Only that slice of each dynamic dataset is read from disk. Flattened (remeshed) arrays,
        mesh arrays included, are cut to the same frames, with their row lengths.

        Args:
            i: trajectory index.
            start, stop: the frame window, ``0 <= start < stop <= T``.
            fields: dynamic fields to read (default: all).

        Returns:
            A ``MeshTrajectory`` whose dynamic fields are ``(stop - start, N, F)`` float32.

        Raises:
            IndexError: the window lies outside the trajectory.
            GnsInputError: an unknown field name, or a NaN/inf inside the window.
        """
        i, group, entry = self._entry(i)
        key = self._keys[i]
        self._check_window(start, stop, entry.layout.num_frames, key)
        names = list(entry.layout.dynamic) if fields is None else list(fields)
        unknown = [n for n in names if n not in entry.layout.dynamic]
        if unknown:
            raise GnsInputError("no such dynamic field", file=self.path,
                                key=f"{key}/{unknown[0]}",
                                expected=f"one of {entry.layout.dynamic}", found=unknown)
        varlen = {n: self._read_rows(group, entry, n, start, stop) for n in entry.row_lengths
                  if n in MESH_ARRAYS or n in names}
        values = {}
        for n in names:
            if n in varlen:
                values[n] = varlen[n]
                axes = ("row", "component")
            else:
                values[n] = group[n][start:stop].astype(np.float32, copy=False)
                axes = ("time index", "node")
            check_finite(values[n], file=self.path, key=f"{key}/{n}", axes=axes,
                         time_offset=start)
        mesh = {n: varlen[n] if n in varlen else entry.fixed[n].copy() for n in MESH_ARRAYS}
        return MeshTrajectory(
            mesh_pos=mesh["mesh_pos"], cells=mesh["cells"], node_type=mesh["node_type"],
            fields=values,
            static_fields={n: entry.fixed[n].copy() for n in entry.layout.static},
            row_lengths={n: entry.row_lengths[n][start:stop].copy() for n in varlen},
            key=key,
        )

    def _read_rows(self, group: h5py.Group, entry: _Entry, name: str, start: int,
                   stop: int) -> np.ndarray:
        """Rows of frames ``start:stop`` of a flattened array."""
        offsets = entry.offsets[name]
        rows = group[name][int(offsets[start]):int(offsets[stop])]
        return _canonical(name, rows)

    def __getitem__(self, i: int) -> MeshTrajectory:
        """Load trajectory ``i`` completely."""
        return self.read_window(i, 0, self.num_frames(i))


def _canonical(name: str, values: np.ndarray) -> np.ndarray:
    """In-memory dtype of a stored array: int64 indices and types, float32 otherwise."""
    if name in ("cells", "node_type"):
        return values.astype(np.int64, copy=False)
    return values.astype(np.float32, copy=False)


def open_mesh_split(dataset_dir: str | os.PathLike, split: str,
                    metadata: MeshMetadata | None = None) -> MeshSplit:
    """Open ``<dataset_dir>/<split>.h5`` of a mesh dataset for lazy reading.

    Args:
        dataset_dir: the dataset directory.
        split: ``"train"``, ``"valid"``, ``"test"`` (or any other split file's stem).
        metadata: used to validate trajectories; loaded from ``metadata.json`` when None and
            the file exists.

    Raises:
        GnsInputError: the split file does not exist (the message lists those that do), or
            ``metadata.json`` is not a valid mesh metadata file.
    """
    directory = Path(dataset_dir)
    path = existing_split_path(directory, split, name_expected=False)
    if metadata is None and (directory / METADATA_FILE).is_file():
        metadata = load_mesh_metadata(directory)
    return MeshSplit(path, metadata)


# ============================================================================ writing
def _signature(traj: MeshTrajectory) -> tuple:
    """What every trajectory of one split must share: widths, field kinds, flattening."""
    return (traj.mesh_pos.shape[1], traj.cells.shape[1],
            tuple(sorted((k, v.shape[-1]) for k, v in traj.fields.items())),
            tuple(sorted((k, v.shape[-1]) for k, v in traj.static_fields.items())),
            tuple(sorted(traj.row_lengths)))


def write_mesh_split(path: str | os.PathLike, trajectories: Iterable[MeshTrajectory],
                     metadata: MeshMetadata | None = None) -> Path:
    """Write mesh trajectories to one split file in the canonical layout.

    Each trajectory is validated (and checked against ``metadata`` when given) and written in
    turn into a temporary file that replaces ``path`` only once all are good, so a failed write
    never leaves a half-written split. Groups are named ``00000, 00001, ...``; dynamic fields
    are chunked along time.

    Args:
        path: the ``.h5`` file to write.
        trajectories: any iterable (a list, a generator, a ``MeshSplit``).
        metadata: the dataset's metadata, to check declared fields and node types.

    Returns:
        The path written.

    Raises:
        GnsInputError: a bad trajectory, or trajectories that differ in fields or widths.
    """
    path = Path(path)
    with replacing_h5(path) as out:
        first = None
        for index, traj in enumerate(trajectories):
            name = f"{index:05d}"
            traj = validate_mesh_trajectory(traj, metadata, file=path, name=traj.key or name)
            signature = _signature(traj)
            if first is not None and signature != first:
                raise GnsInputError("trajectories of one split must share mesh widths, "
                                    "fields and flattened arrays", file=path,
                                    key=traj.key or name, expected=first, found=signature)
            first = signature
            _write_group(out.create_group(name), traj)
    return path


def _write_group(group: h5py.Group, traj: MeshTrajectory) -> None:
    frames = traj.num_frames
    for name in MESH_ARRAYS:
        values = traj.array(name)
        dtype = np.int32 if name in ("cells", "node_type") else np.float32
        _write_array(group, name, values.astype(dtype), traj.row_lengths.get(name), frames)
    for name, values in traj.fields.items():
        _write_array(group, name, values, traj.row_lengths.get(name), frames, dynamic=True)
    for name, values in traj.static_fields.items():
        group.create_dataset(name, data=values)
    for name, lengths in traj.row_lengths.items():
        group.create_dataset(f"{name}{ROW_LENGTHS_SUFFIX}", data=lengths.astype(np.int32))


def _write_array(group: h5py.Group, name: str, values: np.ndarray,
                 row_lengths: np.ndarray | None, frames: int, dynamic: bool = False) -> None:
    """One dataset, chunked along time when it is dynamic or flattened over time."""
    chunks = None
    if row_lengths is not None and len(values):
        # About TIME_CHUNK frames of rows per chunk, as for fixed-size dynamic fields.
        rows = max(_MIN_ROW_CHUNK, int(np.ceil(len(values) / max(frames, 1))) * TIME_CHUNK)
        chunks = (min(len(values), rows), *values.shape[1:])
    elif dynamic and values.size:
        chunks = (min(values.shape[0], TIME_CHUNK), *values.shape[1:])
    group.create_dataset(name, data=values, chunks=chunks)


__all__ = [
    "CELL_TYPES", "MESH_ARRAYS", "MESH_KIND", "NODE_TYPES", "NUM_NODE_TYPES",
    "ROW_LENGTHS_SUFFIX", "MeshFieldSpec", "MeshMetadata", "MeshSplit", "MeshTarget",
    "MeshTrajectory", "check_finite", "is_mesh_dataset", "load_mesh_metadata", "node_type_name",
    "open_mesh_split", "save_mesh_metadata", "split_rows", "validate_mesh_trajectory",
    "write_mesh_split",
]

"""Rollout files of mesh simulators: predicted and true fields over a fixed mesh.

``gns evaluate`` / ``gns rollout`` write one file per run for mesh models, which ``gns render``
(:mod:`gns.mesh.viz`) and the exporters (:mod:`gns.mesh.export`) read back. HDF5 layout:

```
/<key>/mesh_pos                 float32 (N, Dm)      mesh-space coordinates
/<key>/cells                    int32   (C, K)       K = 3 triangles, K = 4 tetrahedra
/<key>/node_type                int32   (N,)         DeepMind NodeType ids
/<key>/predicted/<field>        float32 (T, N, F)    frame 0.. include the initial frames given to the model
/<key>/ground_truth/<field>     float32 (T, N, F)
root attrs: kind = "mesh_rollout", domain (str), dt (float), target_field (str),
            fields (JSON list, the order of the fields), metrics (JSON object, optional)
```

A path ending in ``.npz`` holds the same arrays under the names ``<key>/mesh_pos``,
``<key>/predicted/<field>``, ... and the root attributes as a JSON string named ``__attrs__``
(a unicode array, so that reading needs no pickle).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gns.errors import GnsInputError

__all__ = ["MeshRollout", "write_mesh_rollouts", "read_mesh_rollouts", "read_mesh_rollout", "select_rollout",
           "ROLLOUT_KIND"]

# Value of the root attribute ``kind`` that tells a mesh rollout file from a particle one.
ROLLOUT_KIND = "mesh_rollout"
# Name of the JSON attributes entry in the npz variant (cannot clash: keys never start with "_").
_NPZ_ATTRS = "__attrs__"
_SOURCES = ("predicted", "ground_truth")


@dataclass
class MeshRollout:
    """One rolled-out trajectory on a fixed mesh.

    Attributes:
        key: trajectory name in the file, e.g. ``"00000"`` (no ``/``).
        mesh_pos: ``(N, Dm)`` float32 mesh-space coordinates, ``Dm`` in {2, 3}.
        cells: ``(C, K)`` int32 node indices, ``K = 3`` (triangles) or 4 (tetrahedra).
        node_type: ``(N,)`` int32 DeepMind node types.
        predicted: field name to ``(T, N, F)`` float32 model output, the initial frames included.
        ground_truth: the same field names and shapes, from the dataset.
    """

    key: str
    mesh_pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    ground_truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        """Field names, in the order of :attr:`predicted`."""
        return list(self.predicted)

    @property
    def num_frames(self) -> int:
        """``T``, the frames of every field (0 without fields)."""
        return next((int(a.shape[0]) for a in self.predicted.values()), 0)

    @property
    def num_nodes(self) -> int:
        return int(self.mesh_pos.shape[0])

    def validate(self, *, file: object = None) -> "MeshRollout":
        """Check shapes and dtypes, and return a copy with the canonical dtypes.

        Args:
            file: where the rollout came from (or goes to), for error messages.

        Returns:
            A :class:`MeshRollout` whose arrays are float32 / int32 numpy arrays.

        Raises:
            GnsInputError: naming ``<key>/<array>``, the expected and the found shape, when an
                array has the wrong rank or size, cell indices fall outside ``[0, N)``, the
                predicted and true fields differ in names or shapes, or fields differ in ``T``.
        """
        key = str(self.key)
        if not key or "/" in key:
            raise GnsInputError("a trajectory key must be a non-empty name without '/'", file=file,
                                key="key", expected="e.g. '00000'", found=repr(key))
        mesh_pos = _array(self.mesh_pos, np.float32, file, f"{key}/mesh_pos")
        if mesh_pos.ndim != 2 or mesh_pos.shape[1] not in (2, 3):
            raise GnsInputError("mesh_pos must be (N, Dm) with Dm in {2, 3}", file=file, key=f"{key}/mesh_pos",
                                expected="(N, 2) or (N, 3)", found=mesh_pos.shape)
        num_nodes = mesh_pos.shape[0]
        cells = _integer_array(self.cells, file, f"{key}/cells")
        if cells.ndim != 2 or cells.shape[1] not in (3, 4):
            raise GnsInputError("cells must be (C, K) with K = 3 (triangles) or 4 (tetrahedra)", file=file,
                                key=f"{key}/cells", expected="(C, 3) or (C, 4)", found=cells.shape)
        if cells.size and (cells.min() < 0 or cells.max() >= num_nodes):
            raise GnsInputError("cell indices must refer to mesh nodes", file=file, key=f"{key}/cells",
                                expected=f"indices in [0, {num_nodes})",
                                found=f"indices in [{cells.min()}, {cells.max()}]")
        node_type = _integer_array(self.node_type, file, f"{key}/node_type")
        if node_type.ndim == 2 and node_type.shape[1] == 1:  # DeepMind's (N, 1) layout
            node_type = node_type[:, 0]
        if node_type.shape != (num_nodes,):
            raise GnsInputError("node_type must hold one id per mesh node", file=file, key=f"{key}/node_type",
                                expected=(num_nodes,), found=node_type.shape)
        predicted, ground_truth = self._checked_fields(key, num_nodes, file)
        return MeshRollout(key, mesh_pos, cells.astype(np.int32), node_type.astype(np.int32),
                           predicted, ground_truth)

    def _checked_fields(self, key: str, num_nodes: int, file: object
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not self.predicted:
            raise GnsInputError("a rollout needs at least one predicted field", file=file, key=f"{key}/predicted",
                                expected="e.g. world_pos or velocity", found="no fields")
        if set(self.predicted) != set(self.ground_truth):  # the order may differ; predicted's is kept
            raise GnsInputError("predicted and ground_truth must hold the same fields", file=file, key=key,
                                expected=f"ground_truth fields {list(self.predicted)}",
                                found=list(self.ground_truth))
        checked: dict[str, dict[str, np.ndarray]] = {"predicted": {}, "ground_truth": {}}
        num_frames = None
        for name in self.predicted:
            if not name or "/" in name:
                raise GnsInputError("a field name must be non-empty and without '/'", file=file,
                                    key=f"{key}/predicted", found=repr(name))
            for source, fields in (("predicted", self.predicted), ("ground_truth", self.ground_truth)):
                where = f"{key}/{source}/{name}"
                values = _array(fields[name], np.float32, file, where)
                expected_t = "T" if num_frames is None else str(num_frames)
                if (values.ndim != 3 or values.shape[1] != num_nodes or values.shape[0] < 1
                        or (num_frames is not None and values.shape[0] != num_frames)):
                    raise GnsInputError("a field must be (T, N, F) over the mesh nodes, with one T for all",
                                        file=file, key=where, expected=f"({expected_t}, {num_nodes}, F)",
                                        found=values.shape)
                num_frames = values.shape[0]
                checked[source][name] = values
            if checked["predicted"][name].shape != checked["ground_truth"][name].shape:
                raise GnsInputError("predicted and true values of a field must have the same shape", file=file,
                                    key=f"{key}/ground_truth/{name}",
                                    expected=checked["predicted"][name].shape,
                                    found=checked["ground_truth"][name].shape)
        return checked["predicted"], checked["ground_truth"]


def write_mesh_rollouts(path: str | os.PathLike, rollouts: Sequence[MeshRollout], *, domain: str, dt: float,
                        target_field: str, metrics: Mapping[str, Any] | None = None) -> Path:
    """Write mesh rollouts to HDF5 (or ``.npz``), atomically.

    The file is written beside ``path`` under a temporary name and moved into place with
    :func:`os.replace`, so a crash leaves either the old file or the complete new one.

    Args:
        path: destination; ``.npz`` selects numpy's format, anything else HDF5.
        rollouts: the trajectories, with distinct keys and the same field names.
        domain: free text, e.g. ``"cloth"`` or ``"flow"`` (the dataset's ``domain``).
        dt: seconds between frames, > 0.
        target_field: the field the model predicts (``world_pos``, ``velocity``); one of the fields.
        metrics: optional JSON-serialisable summary (e.g. RMSE per horizon), stored as an attribute.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        GnsInputError: no rollouts, duplicate keys, rollouts with different fields, an unknown
            ``target_field``, a non-positive ``dt``, or any problem found by
            :meth:`MeshRollout.validate`.
    """
    path = Path(path)
    checked = [r.validate(file=path) for r in rollouts]
    attrs = _make_attrs(checked, path, domain=domain, dt=dt, target_field=target_field, metrics=metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if path.suffix.lower() == ".npz":
            _write_npz(tmp, checked, attrs)
        else:
            _write_h5(tmp, checked, attrs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_mesh_rollouts(path: str | os.PathLike, *, keys: Sequence[str] | None = None
                       ) -> tuple[list[MeshRollout], dict[str, Any]]:
    """Read a file written by :func:`write_mesh_rollouts`.

    Args:
        path: an HDF5 or ``.npz`` mesh rollout file.
        keys: read only these trajectories (in this order); None reads all, in file order.

    Returns:
        The rollouts (validated, float32 / int32 arrays) and the root attributes:
        ``kind``, ``domain`` (str), ``dt`` (float), ``target_field`` (str), ``fields`` (list of
        str) and, when written, ``metrics`` (dict).

    Raises:
        GnsInputError: the file is missing, not HDF5 / npz, not a mesh rollout file (e.g. a
            particle rollout), lacks an attribute or array, names a key that is not there, or
            holds arrays of the wrong shape. The message names the file and the key.
    """
    return _read(Path(path), lambda available: list(available) if keys is None else [str(k) for k in keys])


def read_mesh_rollout(path: str | os.PathLike, trajectory: int | str = 0) -> tuple[MeshRollout, dict[str, Any]]:
    """Read one trajectory of a mesh rollout file, without loading the others.

    Args:
        path: an HDF5 or ``.npz`` mesh rollout file.
        trajectory: position in the file (0 = first, -1 = last) or key (``"00003"``).

    Returns:
        The rollout and the root attributes, as :func:`read_mesh_rollouts` gives them.

    Raises:
        GnsInputError: as :func:`read_mesh_rollouts`, or an unknown trajectory (keys listed).
    """
    path = Path(path)
    rollouts, attrs = _read(path, lambda available: [_resolve(available, trajectory, path)])
    return rollouts[0], attrs


def select_rollout(rollouts: Sequence[MeshRollout], trajectory: int | str, *, file: object = None) -> MeshRollout:
    """Pick a rollout by position (``0`` is the first in the file) or by key (``"00003"``).

    Raises:
        GnsInputError: out-of-range index or unknown key (the available keys are listed).
    """
    keys = [r.key for r in rollouts]
    return rollouts[keys.index(_resolve(keys, trajectory, file))]


def _resolve(keys: Sequence[str], trajectory: int | str, file: object) -> str:
    """The key named by ``trajectory``: an index into ``keys`` or a key itself."""
    keys = list(keys)
    if isinstance(trajectory, (int, np.integer)) and not isinstance(trajectory, bool):
        if -len(keys) <= int(trajectory) < len(keys):
            return keys[int(trajectory)]
        raise GnsInputError("trajectory index out of range", file=file, key="trajectory",
                            expected=f"an index in [0, {len(keys)})", found=trajectory)
    if str(trajectory) in keys:
        return str(trajectory)
    raise GnsInputError("no such trajectory in the rollout file", file=file, key=str(trajectory),
                        expected=keys[:10], found=trajectory)


# ------------------------------------------------------------------------------ helpers


def _array(values: Any, dtype: type, file: object, key: str) -> np.ndarray:
    """``values`` as a numpy array of ``dtype`` (torch tensors accepted, duck-typed)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise GnsInputError("must be a numeric array", file=file, key=key, expected="numbers", found=array.dtype)
    return array.astype(dtype, copy=False)


def _integer_array(values: Any, file: object, key: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise GnsInputError("must be an integer array", file=file, key=key, expected="int", found=array.dtype)
    return array.astype(np.int64, copy=False)


def _make_attrs(rollouts: Sequence[MeshRollout], path: Path, *, domain: str, dt: float, target_field: str,
                metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    if not rollouts:
        raise GnsInputError("nothing to write", file=path, expected="at least one rollout", found=0)
    keys = [r.key for r in rollouts]
    if len(set(keys)) != len(keys):
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        raise GnsInputError("trajectory keys must be distinct", file=path, key="key",
                            expected="distinct keys", found=f"repeated {duplicates}")
    fields = rollouts[0].fields
    for r in rollouts[1:]:
        if r.fields != fields:
            raise GnsInputError("all rollouts in a file must hold the same fields", file=path, key=r.key,
                                expected=fields, found=r.fields)
    if target_field not in fields:
        raise GnsInputError("target_field must be one of the rollout fields", file=path, key="target_field",
                            expected=fields, found=target_field)
    if not (np.isfinite(dt) and float(dt) > 0):
        raise GnsInputError("dt must be a finite positive number", file=path, key="dt", expected="> 0", found=dt)
    attrs = {"kind": ROLLOUT_KIND, "domain": str(domain), "dt": float(dt), "target_field": str(target_field),
             "fields": json.dumps(fields)}
    if metrics is not None:
        attrs["metrics"] = json.dumps(metrics)
    return attrs


def _write_h5(path: Path, rollouts: Sequence[MeshRollout], attrs: Mapping[str, Any]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for name, value in attrs.items():
            f.attrs[name] = value
        for r in rollouts:
            group = f.create_group(r.key)
            group["mesh_pos"], group["cells"], group["node_type"] = r.mesh_pos, r.cells, r.node_type
            for source in _SOURCES:
                sub = group.create_group(source)
                for name, values in getattr(r, source).items():
                    # One chunk per frame: a viewer reading a few frames does not inflate the whole field.
                    sub.create_dataset(name, data=values, chunks=(1, *values.shape[1:]) if values.size else None)


def _write_npz(path: Path, rollouts: Sequence[MeshRollout], attrs: Mapping[str, Any]) -> None:
    arrays: dict[str, np.ndarray] = {_NPZ_ATTRS: np.array(json.dumps(dict(attrs)))}
    for r in rollouts:
        arrays.update({f"{r.key}/mesh_pos": r.mesh_pos, f"{r.key}/cells": r.cells, f"{r.key}/node_type": r.node_type})
        for source in _SOURCES:
            arrays.update({f"{r.key}/{source}/{name}": v for name, v in getattr(r, source).items()})
    with open(path, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
        np.savez_compressed(f, **arrays)


def _read(path: Path, choose: Callable[[list[str]], list[str]]) -> tuple[list[MeshRollout], dict[str, Any]]:
    """Read the trajectories ``choose(keys in the file)`` names, and the root attributes."""
    if not path.is_file():
        raise GnsInputError("rollout file not found", file=path, expected="a file written by gns evaluate/rollout",
                            found="nothing")
    reader = _read_npz if path.suffix.lower() == ".npz" else _read_h5
    raw, attrs = reader(path, choose)
    attrs = _parse_attrs(attrs, path)
    return [_rollout_from_arrays(key, arrays, attrs["fields"], path) for key, arrays in raw.items()], attrs


def _missing(path: Path, key: str, available: Sequence[str]) -> GnsInputError:
    return GnsInputError("no such trajectory in the rollout file", file=path, key=key,
                         expected=sorted(available)[:10], found=key)


def _read_h5(path: Path, choose: Callable[[list[str]], list[str]]
             ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise GnsInputError(f"not an HDF5 file ({err})", file=path, expected="HDF5 (or a .npz suffix)",
                            found=f"{path.stat().st_size} bytes of something else") from None
    with f:
        attrs = {name: _plain(value) for name, value in f.attrs.items()}
        _check_kind(attrs, path)
        available = list(f)
        raw: dict[str, dict[str, Any]] = {}
        for key in choose(available):
            if key not in f:
                raise _missing(path, key, available)
            if not isinstance(f[key], h5py.Group):
                raise GnsInputError("expected one group per trajectory", file=path, key=key,
                                    expected="a group", found="a dataset")
            raw[key] = _h5_group_arrays(f[key])
    return raw, attrs


def _h5_group_arrays(group: Any) -> dict[str, Any]:
    import h5py

    arrays: dict[str, Any] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            arrays[name] = {field_name: np.asarray(item[field_name][()]) for field_name in item}
        else:
            arrays[name] = np.asarray(item[()])
    return arrays


def _read_npz(path: Path, choose: Callable[[list[str]], list[str]]
              ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GnsInputError(f"not a numpy .npz archive ({err})", file=path, expected=".npz archive",
                            found="unreadable") from None
    if not hasattr(archive, "files"):  # a plain .npy saved under an .npz name
        raise GnsInputError("not a numpy .npz archive", file=path, expected=".npz archive", found="a single array")
    with archive:
        if _NPZ_ATTRS not in archive.files:
            raise GnsInputError("not a mesh rollout file: no attributes entry", file=path, key=_NPZ_ATTRS,
                                expected=f"kind = {ROLLOUT_KIND!r}", found=sorted(archive.files)[:5])
        try:
            attrs = json.loads(str(archive[_NPZ_ATTRS][()]))
        except json.JSONDecodeError as err:
            raise GnsInputError(f"attributes are not valid JSON ({err})", file=path, key=_NPZ_ATTRS) from None
        if not isinstance(attrs, dict):
            raise GnsInputError("attributes must be a JSON object", file=path, key=_NPZ_ATTRS,
                                expected="object", found=type(attrs).__name__)
        _check_kind(attrs, path)
        # Keys in order of first appearance (the order they were written in).
        available = list(dict.fromkeys(name.split("/")[0] for name in archive.files if name != _NPZ_ATTRS))
        wanted = choose(available)
        raw: dict[str, dict[str, Any]] = {}
        for key in wanted:
            if key not in available:
                raise _missing(path, key, available)
            raw[key] = {}
        for name in archive.files:
            parts = name.split("/")
            if name == _NPZ_ATTRS or parts[0] not in raw:
                continue  # npz members load lazily: unwanted trajectories are never decompressed
            entry = raw[parts[0]]
            if len(parts) == 2:
                entry[parts[1]] = archive[name]
            elif len(parts) == 3:
                entry.setdefault(parts[1], {})[parts[2]] = archive[name]
            else:
                raise GnsInputError("unexpected array name", file=path, key=name,
                                    expected="<key>/<array> or <key>/<predicted|ground_truth>/<field>", found=name)
    return raw, attrs


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes -> str, numpy scalar -> number)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_kind(attrs: Mapping[str, Any], path: Path) -> None:
    kind = attrs.get("kind")
    if kind != ROLLOUT_KIND:
        hint = " (a particle rollout file? read it with gns.evaluate.read_rollouts)" if kind is None else ""
        raise GnsInputError("not a mesh rollout file" + hint, file=path, key="kind",
                            expected=repr(ROLLOUT_KIND), found=repr(kind))


def _parse_attrs(attrs: Mapping[str, Any], path: Path) -> dict[str, Any]:
    for name in ("domain", "dt", "target_field", "fields"):
        if name not in attrs:
            raise GnsInputError("missing root attribute", file=path, key=name,
                                expected=f"attribute {name!r}", found=sorted(attrs))
    out = dict(attrs)
    try:
        fields = json.loads(attrs["fields"]) if isinstance(attrs["fields"], str) else attrs["fields"]
    except json.JSONDecodeError as err:
        raise GnsInputError(f"not valid JSON ({err})", file=path, key="fields") from None
    if not isinstance(fields, list) or not all(isinstance(n, str) for n in fields):
        raise GnsInputError("fields must be a JSON list of names", file=path, key="fields",
                            expected='e.g. ["world_pos"]', found=attrs["fields"])
    out["fields"] = fields
    try:
        out["dt"] = float(attrs["dt"])
    except (TypeError, ValueError):
        raise GnsInputError("dt must be a number", file=path, key="dt", found=attrs["dt"]) from None
    out["domain"], out["target_field"] = str(attrs["domain"]), str(attrs["target_field"])
    if out["target_field"] not in fields:
        raise GnsInputError("target_field must be one of the fields", file=path, key="target_field",
                            expected=fields, found=out["target_field"])
    if isinstance(attrs.get("metrics"), str):
        out["metrics"] = json.loads(attrs["metrics"])
    return out


def _rollout_from_arrays(key: str, arrays: Mapping[str, Any], fields: Sequence[str], path: Path) -> MeshRollout:
    for name in ("mesh_pos", "cells", "node_type"):
        if not isinstance(arrays.get(name), np.ndarray):
            raise GnsInputError("missing array", file=path, key=f"{key}/{name}", expected=f"{name} array",
                                found=sorted(arrays))
    sources = {}
    for source in _SOURCES:
        group = arrays.get(source)
        if not isinstance(group, dict):
            raise GnsInputError("missing group of fields", file=path, key=f"{key}/{source}",
                                expected=f"fields {list(fields)}", found=sorted(arrays))
        if sorted(group) != sorted(fields):
            raise GnsInputError("fields differ from the file's 'fields' attribute", file=path,
                                key=f"{key}/{source}", expected=list(fields), found=sorted(group))
        sources[source] = {name: group[name] for name in fields}  # the declared order
    rollout = MeshRollout(key, arrays["mesh_pos"], arrays["cells"], arrays["node_type"],
                          sources["predicted"], sources["ground_truth"])
    return rollout.validate(file=path)

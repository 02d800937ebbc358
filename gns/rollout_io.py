"""Rollout files: predicted (and true, and counterfactual) trajectories of any domain, in one format.

``gns evaluate`` / ``gns rollout`` / ``gns counterfactual`` write one file per run; ``gns render``
and ``gns export`` read it back and dispatch on its ``simulator`` attribute. One
:class:`RolloutRecord` per trajectory (or per counterfactual variant) holds any number of
*sources* (``predicted``, ``ground_truth``, ``solver``, ...) of the same fields and shapes, plus
the per-entity attributes, the per-system attributes (a scene's obstacles, a material context) and
the links needed to draw it. HDF5 layout::

    /<key>/<source>/<field>   float32 (T, N, F)   frame 0.. include the initial frames given to the model
    /<key>/static/<name>      (N, ...)           per-entity attributes (particle_type; mesh_pos, node_type)
    /<key>/system/<name>      (...)              per-system attributes, any shape (obstacle_shape, context)
    /<key>/links/<name>       int32 (E, K)        entity tuples (cells: K = 3 triangles, 4 tetrahedra)
    root attributes:
      kind = "gns_rollout", format_version = 2
      simulator      "particles" | "mesh" | ... (the domain that made it: what reads it back)
      domain         free text (the dataset's: "water2d", "cloth", "flow")
      dt             seconds between frames
      target_field   the field the model integrates
      fields         JSON list of the field names, in order
      sources        JSON list of the source names, in order
      metrics        JSON object (optional)
      info           JSON object (optional): e.g. the box bounds, the counterfactual query

A path ending in ``.npz`` holds the same arrays under the same names and the root attributes as a
JSON string named ``__attrs__`` (a unicode array, so that reading needs no pickle). Files written
by gns 0.1 (mesh files with ``kind = "mesh_rollout"``, untagged particle files) are read too, and
records without a ``system`` group (written before it existed) read with none.
Writing is atomic (:mod:`gns.atomic`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gns.atomic import atomic_path
from gns.errors import GnsInputError

__all__ = ["RolloutRecord", "write_rollouts", "read_rollouts", "read_rollout", "select_record", "comparison_panels",
           "system_arrays", "ROLLOUT_KIND", "FORMAT_VERSION"]

ROLLOUT_KIND = "gns_rollout"
FORMAT_VERSION = 2
_LEGACY_MESH_KIND = "mesh_rollout"          # gns 0.1 mesh rollout files
_NPZ_ATTRS = "__attrs__"                   # cannot clash: keys never start with "_"
_RESERVED = ("static", "system", "links")  # group names that are not sources


@dataclass
class RolloutRecord:
    """One rolled-out trajectory (or counterfactual variant).

    Attributes:
        key: its name in the file, e.g. ``"00000"`` or ``"factual"`` (no ``/``).
        sources: source name -> field name -> ``(T, N, F)`` values; every source holds the same
            fields with the same shapes.
        static: name -> ``(N, ...)`` per-entity attributes.
        links: name -> ``(E, K)`` integer entity indices in ``[0, N)``.
        system: name -> ``(...)`` attributes of the record's one system, of any shape (e.g. a scene's
            obstacles ``obstacle_shape (M,)``, ``obstacle_position (M, 2)``; a material context ``(G,)``).
    """

    key: str
    sources: dict[str, dict[str, np.ndarray]]
    static: dict[str, np.ndarray] = field(default_factory=dict)
    links: dict[str, np.ndarray] = field(default_factory=dict)
    system: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predicted(self) -> dict[str, np.ndarray]:
        return self.sources["predicted"]

    @property
    def ground_truth(self) -> dict[str, np.ndarray]:
        return self.sources["ground_truth"]

    @property
    def fields(self) -> list[str]:
        """Field names, in the order of the first source."""
        return list(next(iter(self.sources.values()), {}))

    @property
    def num_frames(self) -> int:
        return next((int(a.shape[0]) for s in self.sources.values() for a in s.values()), 0)

    @property
    def num_entities(self) -> int:
        return next((int(a.shape[1]) for s in self.sources.values() for a in s.values()), 0)

    def validate(self, *, file: object = None) -> "RolloutRecord":
        """Check names, shapes and dtypes; return a copy with float32 fields and int32 links (and
        static and system attributes int32 where integer or bool, float32 otherwise).

        Raises:
            GnsInputError: naming ``<key>/<source>/<field>`` (or ``static/``, ``system/``, ``links/``) and the
                expected and found shapes; or a system attribute that is not numeric or not finite.
        """
        key = str(self.key)
        if not key or "/" in key:
            raise GnsInputError("a record key must be a non-empty name without '/'", file=file, key="key",
                                expected="e.g. '00000'", found=repr(key))
        if not self.sources:
            raise GnsInputError("a record needs at least one source", file=file, key=key,
                                expected="e.g. predicted and ground_truth", found="none")
        names = list(next(iter(self.sources.values())))
        if not names:
            raise GnsInputError("a record needs at least one field", file=file, key=key, found="no fields")
        shape = None
        sources: dict[str, dict[str, np.ndarray]] = {}
        for source, fields in self.sources.items():
            _check_name(source, file, key, "source")
            if source in _RESERVED:
                raise GnsInputError("a source cannot be named like a reserved group", file=file, key=f"{key}/{source}",
                                    expected=f"not one of {_RESERVED}", found=source)
            if list(fields) != names and set(fields) != set(names):
                raise GnsInputError("every source must hold the same fields", file=file, key=f"{key}/{source}",
                                    expected=names, found=list(fields))
            sources[source] = {}
            for name in names:
                _check_name(name, file, f"{key}/{source}", "field")
                where = f"{key}/{source}/{name}"
                values = _array(fields[name], np.float32, file, where)
                if values.ndim != 3 or values.shape[0] < 1:
                    raise GnsInputError("a field must be (T, N, F)", file=file, key=where, expected="(T, N, F)",
                                        found=values.shape)
                if shape is None:
                    shape = {"T": values.shape[0], "N": values.shape[1]}
                if values.shape[:2] != (shape["T"], shape["N"]):
                    raise GnsInputError("every field of every source must have the same T and N", file=file,
                                        key=where, expected=f"({shape['T']}, {shape['N']}, F)", found=values.shape)
                if source != next(iter(self.sources)) and values.shape != sources[next(iter(sources))][name].shape:
                    raise GnsInputError("a field must have the same shape in every source", file=file, key=where,
                                        expected=sources[next(iter(sources))][name].shape, found=values.shape)
                sources[source][name] = values
        n = shape["N"]
        static = {}
        for name, values in self.static.items():
            _check_name(name, file, f"{key}/static", "attribute")
            array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
            if array.ndim == 2 and array.shape[1] == 1 and array.dtype.kind in "iu":  # DeepMind's (N, 1) ids
                array = array[:, 0]
            if array.ndim < 1 or array.shape[0] != n:
                raise GnsInputError("a static attribute needs one row per entity", file=file,
                                    key=f"{key}/static/{name}", expected=f"({n}, ...)", found=array.shape)
            static[name] = array.astype(np.int32) if array.dtype.kind in "iub" else array.astype(np.float32)
        system = {}
        for name, values in self.system.items():
            _check_name(name, file, f"{key}/system", "system attribute")
            where = f"{key}/system/{name}"
            array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
            if array.dtype.kind not in "iubf":
                raise GnsInputError("a system attribute must be a numeric array", file=file, key=where,
                                    expected="integers, bools or floats", found=array.dtype)
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise GnsInputError("a system attribute must be finite", file=file, key=where,
                                    expected="finite values", found=f"{int((~np.isfinite(array)).sum())} NaN or inf")
            system[name] = array.astype(np.int32) if array.dtype.kind in "iub" else array.astype(np.float32)
        links = {}
        for name, values in self.links.items():
            _check_name(name, file, f"{key}/links", "link")
            where = f"{key}/links/{name}"
            array = _integer_array(values, file, where)
            if array.ndim != 2:
                raise GnsInputError("links must be (E, K) entity indices", file=file, key=where, expected="(E, K)",
                                    found=array.shape)
            if array.size and (array.min() < 0 or array.max() >= n):
                raise GnsInputError("links must refer to entities of the record", file=file, key=where,
                                    expected=f"indices in [0, {n})", found=f"indices in [{array.min()}, {array.max()}]")
            links[name] = array.astype(np.int32)
        return RolloutRecord(key, sources, static, links, system)


def write_rollouts(path: str | os.PathLike, records: Sequence[RolloutRecord], *, simulator: str, domain: str,
                   dt: float, target_field: str, metrics: Mapping[str, Any] | None = None,
                   info: Mapping[str, Any] | None = None) -> Path:
    """Write records to HDF5 (or ``.npz``), atomically.

    Args:
        path: destination; ``.npz`` selects numpy's format, anything else HDF5.
        records: distinct keys, the same field names in every record (each holds some or all of the sources).
        simulator: the domain that wrote it (``"particles"``, ``"mesh"``): what ``gns render`` dispatches on.
        domain: free text, the dataset's domain (``"water2d"``, ``"cloth"``, ``"flow"``).
        dt: seconds between frames, > 0.
        target_field: the field the model integrates; one of the fields.
        metrics: optional JSON-serialisable summary.
        info: optional JSON-serialisable extra attributes (box bounds, a counterfactual query).

    Raises:
        GnsInputError: no records, repeated keys, records with different fields, an
            unknown target field, a non-positive ``dt``, or anything :meth:`RolloutRecord.validate` finds.
    """
    path = Path(path)
    checked = [r.validate(file=path) for r in records]
    attrs = _make_attrs(checked, path, simulator=simulator, domain=domain, dt=dt, target_field=target_field,
                        metrics=metrics, info=info)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npz":
            _write_npz(tmp, checked, attrs)
        else:
            _write_h5(tmp, checked, attrs)
    return path


def read_rollouts(path: str | os.PathLike, *, keys: Sequence[str] | None = None
                  ) -> tuple[list[RolloutRecord], dict[str, Any]]:
    """Read a rollout file (every record, or those of ``keys`` in that order) and its root attributes.

    Returns:
        the records (validated) and the attributes: ``kind``, ``simulator``, ``domain``, ``dt``,
        ``target_field``, ``fields`` and ``sources`` (lists), and ``metrics`` / ``info`` (dicts) when written.

    Raises:
        GnsInputError: the file is missing, not HDF5 / npz, not a rollout file, lacks an
            attribute or array, names a key that is not there, or holds arrays of the wrong shape.
    """
    return _read(Path(path), lambda available: list(available) if keys is None else [str(k) for k in keys])


def read_rollout(path: str | os.PathLike, trajectory: int | str = 0) -> tuple[RolloutRecord, dict[str, Any]]:
    """One record by position (``0`` first, ``-1`` last) or key, without reading the others."""
    path = Path(path)
    records, attrs = _read(path, lambda available: [_resolve(available, trajectory, path)])
    return records[0], attrs


def select_record(records: Sequence[RolloutRecord], trajectory: int | str, *, file: object = None) -> RolloutRecord:
    """Pick a record by position or by key (the available keys are listed in the error)."""
    keys = [r.key for r in records]
    return records[keys.index(_resolve(keys, trajectory, file))]


def system_arrays(state: Any) -> dict[str, np.ndarray]:
    """The per-system attributes of a one-system :class:`gns.state.State`, for its record's ``system``:
    name -> ``(...)`` (its ``(1, ...)`` tensors without the system axis).

    Raises:
        GnsInputError: the state holds more than one system.
    """
    if state.num_systems != 1:
        raise GnsInputError("a rollout record holds one system", key="system", expected="a one-system state",
                            found=f"{state.num_systems} systems")
    return {name: values[0].detach().cpu().numpy() for name, values in state.system.items()}


_TITLES = {"ground_truth": "Ground truth", "predicted": "Prediction", "solver": "Solver"}


def comparison_panels(records: Sequence[RolloutRecord], attrs: Mapping[str, Any], trajectory: int | str | None = None,
                      *, file: object = None) -> list[tuple[str, RolloutRecord, str]]:
    """What to draw side by side for one trajectory of a rollout file: ``[(title, record, source)]``.

    A rollout file: ground truth | prediction of the trajectory (an index or key; the first by
    default). A counterfactual file (``attrs["info"]["counterfactual"]``): the factual
    prediction | a variant's prediction (| the variant re-simulated by the reference solver); the
    first variant by default.
    """
    if (attrs.get("info") or {}).get("counterfactual") is not None:
        factual = select_record(records, "factual", file=file)
        variants = [r for r in records if r.key != "factual"] or [factual]
        variant = variants[0] if trajectory is None else select_record(records, trajectory, file=file)
        panels = [("factual", factual, "predicted")]
        if variant is not factual:
            panels.append((variant.key, variant, "predicted"))
        if "solver" in variant.sources:
            panels.append((f"{variant.key}: solver", variant, "solver"))
        return panels
    record = records[0] if trajectory is None else select_record(records, trajectory, file=file)
    order = [s for s in ("ground_truth", "predicted") if s in record.sources]
    order += [s for s in record.sources if s not in order]
    return [(_TITLES.get(s, s.replace("_", " ")), record, s) for s in order]


def _resolve(keys: Sequence[str], trajectory: int | str, file: object) -> str:
    keys = list(keys)
    if isinstance(trajectory, (int, np.integer)) and not isinstance(trajectory, bool):
        if -len(keys) <= int(trajectory) < len(keys):
            return keys[int(trajectory)]
        raise GnsInputError("trajectory index out of range", file=file, key="trajectory",
                            expected=f"an index in [0, {len(keys)})", found=trajectory)
    if str(trajectory) in keys:
        return str(trajectory)
    if str(trajectory).lstrip("-").isdigit() and -len(keys) <= int(trajectory) < len(keys):
        return keys[int(trajectory)]
    raise GnsInputError("no such trajectory in the rollout file", file=file, key=str(trajectory),
                        expected=keys[:10], found=trajectory)


# ------------------------------------------------------------------------------ helpers


def _check_name(name: str, file: object, where: str, what: str) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise GnsInputError(f"a {what} name must be non-empty and without '/'", file=file, key=where,
                            found=repr(name))


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


def _make_attrs(records: Sequence[RolloutRecord], path: Path, *, simulator: str, domain: str, dt: float,
                target_field: str, metrics: Mapping[str, Any] | None, info: Mapping[str, Any] | None) -> dict:
    if not records:
        raise GnsInputError("nothing to write", file=path, expected="at least one record", found=0)
    keys = [r.key for r in records]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise GnsInputError("record keys must be distinct", file=path, key="key", expected="distinct keys",
                            found=f"repeated {repeated}")
    fields = records[0].fields
    sources = list(dict.fromkeys(s for r in records for s in r.sources))  # every record holds some of them
    for r in records[1:]:
        if r.fields != fields:
            raise GnsInputError("all records in a file must hold the same fields", file=path, key=r.key,
                                expected=f"fields {fields}", found=f"fields {r.fields}")
    if target_field not in fields:
        raise GnsInputError("target_field must be one of the fields", file=path, key="target_field",
                            expected=fields, found=target_field)
    if not (np.isfinite(dt) and float(dt) > 0):
        raise GnsInputError("dt must be a finite positive number", file=path, key="dt", expected="> 0", found=dt)
    attrs = {"kind": ROLLOUT_KIND, "format_version": FORMAT_VERSION, "simulator": str(simulator),
             "domain": str(domain), "dt": float(dt), "target_field": str(target_field), "fields": json.dumps(fields),
             "sources": json.dumps(sources)}
    if metrics is not None:
        attrs["metrics"] = json.dumps(metrics)
    if info is not None:
        attrs["info"] = json.dumps(info)
    return attrs


def _arrays_of(record: RolloutRecord) -> dict[str, np.ndarray]:
    """``{"<source>/<field>" | "static/<name>" | "system/<name>" | "links/<name>": array}`` of one record."""
    out = {f"{source}/{name}": v for source, fields in record.sources.items() for name, v in fields.items()}
    out.update({f"static/{name}": v for name, v in record.static.items()})
    out.update({f"system/{name}": v for name, v in record.system.items()})
    out.update({f"links/{name}": v for name, v in record.links.items()})
    return out


def _write_h5(path: Path, records: Sequence[RolloutRecord], attrs: Mapping[str, Any]) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as f:  # records read back in the order written
        for name, value in attrs.items():
            f.attrs[name] = value
        for r in records:
            group = f.create_group(r.key, track_order=True)
            for name, values in _arrays_of(r).items():
                is_field = name.split("/")[0] not in _RESERVED
                # One chunk per frame: a viewer reading a few frames does not inflate the whole field.
                chunks = (1, *values.shape[1:]) if is_field and values.size else None
                group.create_dataset(name, data=values, chunks=chunks)


def _write_npz(path: Path, records: Sequence[RolloutRecord], attrs: Mapping[str, Any]) -> None:
    arrays: dict[str, np.ndarray] = {_NPZ_ATTRS: np.array(json.dumps(dict(attrs)))}
    for r in records:
        arrays.update({f"{r.key}/{name}": v for name, v in _arrays_of(r).items()})
    with open(path, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
        np.savez_compressed(f, **arrays)


def _read(path: Path, choose: Callable[[list[str]], list[str]]) -> tuple[list[RolloutRecord], dict[str, Any]]:
    if not path.is_file():
        raise GnsInputError("rollout file not found", file=path, expected="a file written by gns rollout",
                            found="nothing")
    reader = _read_npz if path.suffix.lower() == ".npz" else _read_h5
    raw, attrs = reader(path, choose)
    if attrs.get("kind") == ROLLOUT_KIND:
        attrs = _parse_attrs(attrs, path)
        records = [_record(key, groups, attrs, path) for key, groups in raw.items()]
    else:
        records, attrs = _legacy(raw, attrs, path)
    return [r.validate(file=path) for r in records], attrs


def _missing(path: Path, key: str, available: Sequence[str]) -> GnsInputError:
    return GnsInputError("no such trajectory in the rollout file", file=path, key=key,
                         expected=list(available)[:10], found=key)


def _read_h5(path: Path, choose: Callable[[list[str]], list[str]]) -> tuple[dict[str, dict], dict[str, Any]]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise GnsInputError(f"not an HDF5 file ({err})", file=path, expected="HDF5 (or a .npz suffix)",
                            found=f"{path.stat().st_size} bytes of something else") from None
    with f:
        attrs = {name: _plain(value) for name, value in f.attrs.items()}
        available = list(f)
        raw: dict[str, dict] = {}
        for key in choose(available):
            if key not in f:
                raise _missing(path, key, available)
            if not isinstance(f[key], h5py.Group):
                tagged = attrs.get("kind") in (ROLLOUT_KIND, _LEGACY_MESH_KIND)
                raise GnsInputError("expected one group per trajectory" if tagged else "not a rollout file", file=path,
                                    key=key, expected="a group", found="a dataset")
            raw[key] = {name: ({sub: np.asarray(item[sub][()]) for sub in item} if isinstance(item, h5py.Group)
                               else np.asarray(item[()])) for name, item in f[key].items()}
    return raw, attrs


def _read_npz(path: Path, choose: Callable[[list[str]], list[str]]) -> tuple[dict[str, dict], dict[str, Any]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GnsInputError(f"not a numpy .npz archive ({err})", file=path, expected=".npz archive",
                            found="unreadable") from None
    if not hasattr(archive, "files"):  # a plain .npy saved under an .npz name
        raise GnsInputError("not a numpy .npz archive", file=path, expected=".npz archive", found="a single array")
    with archive:
        if _NPZ_ATTRS not in archive.files:
            raise GnsInputError("not a rollout file: no attributes entry", file=path, key=_NPZ_ATTRS,
                                expected=f"kind = {ROLLOUT_KIND!r}", found=sorted(archive.files)[:5])
        try:
            attrs = json.loads(str(archive[_NPZ_ATTRS][()]))
        except json.JSONDecodeError as err:
            raise GnsInputError(f"attributes are not valid JSON ({err})", file=path, key=_NPZ_ATTRS) from None
        if not isinstance(attrs, dict):
            raise GnsInputError("attributes must be a JSON object", file=path, key=_NPZ_ATTRS, expected="object",
                                found=type(attrs).__name__)
        available = list(dict.fromkeys(name.split("/")[0] for name in archive.files if name != _NPZ_ATTRS))
        raw: dict[str, dict] = {}
        for key in choose(available):
            if key not in available:
                raise _missing(path, key, available)
            raw[key] = {}
        for name in archive.files:
            parts = name.split("/")
            if name == _NPZ_ATTRS or parts[0] not in raw:
                continue  # npz members load lazily: unwanted trajectories are never decompressed
            if len(parts) == 2:
                raw[parts[0]][parts[1]] = archive[name]
            elif len(parts) == 3:
                raw[parts[0]].setdefault(parts[1], {})[parts[2]] = archive[name]
            else:
                raise GnsInputError("unexpected array name", file=path, key=name,
                                    expected="<key>/<source>/<field>, <key>/static/<name>, <key>/system/<name> "
                                             "or <key>/links/<name>",
                                    found=name)
    return raw, attrs


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes -> str, numpy scalar -> number)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_attr(attrs: Mapping[str, Any], name: str, path: Path, kind: type) -> Any:
    value = attrs[name]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise GnsInputError(f"not valid JSON ({err})", file=path, key=name) from None
    if not isinstance(value, kind):
        raise GnsInputError(f"attribute must be a JSON {kind.__name__}", file=path, key=name, found=value)
    return value


def _parse_attrs(attrs: Mapping[str, Any], path: Path) -> dict[str, Any]:
    for name in ("simulator", "domain", "dt", "target_field", "fields", "sources"):
        if name not in attrs:
            raise GnsInputError("missing root attribute", file=path, key=name, expected=f"attribute {name!r}",
                                found=sorted(attrs))
    out = dict(attrs)
    out["fields"] = _json_attr(attrs, "fields", path, list)
    out["sources"] = _json_attr(attrs, "sources", path, list)
    try:
        out["dt"] = float(attrs["dt"])
    except (TypeError, ValueError):
        raise GnsInputError("dt must be a number", file=path, key="dt", found=attrs["dt"]) from None
    if out["target_field"] not in out["fields"]:
        raise GnsInputError("target_field must be one of the fields", file=path, key="target_field",
                            expected=out["fields"], found=out["target_field"])
    for name in ("metrics", "info"):
        if name in attrs:
            out[name] = _json_attr(attrs, name, path, dict)
    return out


def _record(key: str, groups: Mapping[str, Any], attrs: Mapping[str, Any], path: Path) -> RolloutRecord:
    sources = {}
    present = [s for s in attrs["sources"] if s in groups]
    if not present:
        raise GnsInputError("a record holds none of the file's sources", file=path, key=key,
                            expected=f"some of {attrs['sources']}", found=sorted(groups))
    for source in present:
        group = groups.get(source)
        if not isinstance(group, dict):
            raise GnsInputError("missing group of fields", file=path, key=f"{key}/{source}",
                                expected=f"fields {attrs['fields']}", found=sorted(groups))
        if sorted(group) != sorted(attrs["fields"]):
            raise GnsInputError("fields differ from the file's 'fields' attribute", file=path, key=f"{key}/{source}",
                                expected=attrs["fields"], found=sorted(group))
        sources[source] = {name: group[name] for name in attrs["fields"]}  # the declared order
    return RolloutRecord(key, sources, _group(groups, "static", key, path), _group(groups, "links", key, path),
                         _group(groups, "system", key, path))


def _group(groups: Mapping[str, Any], name: str, key: str, path: Path) -> dict[str, np.ndarray]:
    """The arrays of the reserved group ``name`` of a record (empty where the file has none)."""
    group = groups.get(name, {})
    if not isinstance(group, dict):
        raise GnsInputError(f"{name!r} must be a group of named arrays", file=path, key=f"{key}/{name}",
                            expected=f"{key}/{name}/<name>", found="a single array")
    return dict(group)


def _legacy(raw: Mapping[str, Mapping[str, Any]], attrs: Mapping[str, Any], path: Path
            ) -> tuple[list[RolloutRecord], dict[str, Any]]:
    """Records and attributes of a gns 0.1 file (mesh: ``kind = "mesh_rollout"``; particles: untagged)."""
    kind = attrs.get("kind")
    records = []
    if kind == _LEGACY_MESH_KIND:
        out = _parse_attrs({**attrs, "simulator": "mesh", "sources": json.dumps(["predicted", "ground_truth"])}, path)
        for key, arrays in raw.items():
            for name in ("mesh_pos", "cells", "node_type"):
                if not isinstance(arrays.get(name), np.ndarray):
                    raise GnsInputError("missing array", file=path, key=f"{key}/{name}", expected=f"{name} array",
                                        found=sorted(arrays))
            record = _record(key, arrays, out, path)
            record.static = {"mesh_pos": arrays["mesh_pos"], "node_type": arrays["node_type"]}
            record.links = {"cells": arrays["cells"]}
            records.append(record)
    elif kind is None and raw and all({"predicted", "ground_truth", "particle_type", "initial"} <= set(a)
                                      for a in raw.values()):
        metrics = json.loads(attrs["metrics"]) if isinstance(attrs.get("metrics"), str) else None
        out = {"kind": "gns_rollout (read from a gns 0.1 particle file)", "simulator": "particles",
               "domain": "particles", "dt": 1.0, "target_field": "position", "fields": ["position"],
               "sources": ["predicted", "ground_truth"], **({"metrics": metrics} if metrics else {})}
        for key, a in raw.items():
            head = np.asarray(a["initial"])
            records.append(RolloutRecord(key, {"predicted": {"position": np.concatenate([head, a["predicted"]])},
                                               "ground_truth": {"position": np.concatenate([head, a["ground_truth"]])}},
                                         {"particle_type": a["particle_type"]}))
    else:
        raise GnsInputError("not a rollout file", file=path, key="kind", expected=repr(ROLLOUT_KIND), found=repr(kind))
    return records, out

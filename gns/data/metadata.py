"""Dataset metadata: the DeepMind ``metadata.json`` keys plus a few of our own.

A dataset directory holds one ``metadata.json``. Its keys follow DeepMind's
``learning_to_simulate`` datasets (``bounds``, ``sequence_length``, ``dim``, ``dt``,
``default_connectivity_radius`` and the velocity/acceleration statistics), which LagrangeBench
extends with ``periodic_boundary_conditions`` and per-split sequence lengths. We add the keys
that the code would otherwise have to hard-code (kinematic particle types, number of types,
context sizes, gravity). Every key we do not know is kept in ``extra`` and written back, so a
load/save round trip never loses information.

``sequence_length`` follows DeepMind: it counts *steps*, so a trajectory holds
``sequence_length + 1`` positions. LagrangeBench's ``sequence_length_train`` counts positions
(frames) instead, so it is mapped to ``sequence_length_train - 1``. The length that code should
trust for a given trajectory is always the one on disk (``TrajectorySplit.sequence_length``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gns.atomic import write_json_atomic
from gns.errors import GnsInputError

METADATA_FILE = "metadata.json"

# The DeepMind default: particle type 3 marks boundary / kinematic particles whose positions
# are given, not predicted (learning_to_simulate's KINEMATIC_PARTICLE_ID).
DEFAULT_KINEMATIC_PARTICLE_TYPES = (3,)
# learning_to_simulate embeds 9 particle types (NUM_PARTICLE_TYPES).
DEFAULT_NUM_PARTICLE_TYPES = 9

STATISTICS_KEYS = ("vel_mean", "vel_std", "acc_mean", "acc_std")
# Keys the DatasetMetadata fields own; everything else goes to ``extra``.
_OWN_KEYS = frozenset({
    "dim", "dt", "bounds", "sequence_length", "default_connectivity_radius", *STATISTICS_KEYS,
    "periodic_boundary_conditions", "kinematic_particle_types", "num_particle_types",
    "context_size", "step_context_size", "gravity",
})
_REQUIRED_KEYS = ("dim", "dt", "bounds", "default_connectivity_radius")


@dataclass(frozen=True)
class DatasetMetadata:
    """Everything about a dataset that is not a trajectory.

    Positions are in the dataset's own length unit; velocities and accelerations are per step
    (the time step is absorbed, as in GNS), so ``vel_*`` is in length/step and ``acc_*`` and
    ``gravity`` in length/step^2.
    """

    dim: int  # spatial dimension D
    dt: float  # physical time between two stored frames (informational: GNS works per step)
    bounds: list[list[float]]  # D pairs [lo, hi]: the simulation box
    sequence_length: int | None  # steps per trajectory (frames - 1), DeepMind convention
    default_connectivity_radius: float  # neighbour radius the dataset was published with
    vel_mean: list[float] | None = None  # (D,) mean per-step velocity over all particles/steps
    vel_std: list[float] | None = None  # (D,)
    acc_mean: list[float] | None = None  # (D,) mean per-step acceleration
    acc_std: list[float] | None = None  # (D,)
    periodic_boundary_conditions: list[bool] | None = None  # (D,); None -> all False
    kinematic_particle_types: list[int] = field(
        default_factory=lambda: list(DEFAULT_KINEMATIC_PARTICLE_TYPES))  # types not predicted
    num_particle_types: int = DEFAULT_NUM_PARTICLE_TYPES  # size of the type embedding
    context_size: int = 0  # G: per-trajectory globals (e.g. material parameters)
    step_context_size: int = 0  # S: per-step globals
    gravity: list[float] | None = None  # (D,) per-step acceleration, if the dataset declares it
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, preserved verbatim

    def __post_init__(self) -> None:
        if self.periodic_boundary_conditions is None and isinstance(self.dim, int):
            object.__setattr__(self, "periodic_boundary_conditions", [False] * self.dim)
        _validate(self, source=None)

    # ---------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """The JSON object for ``metadata.json`` (optional fields that are unset are left out)."""
        out: dict[str, Any] = {
            "dim": self.dim,
            "dt": self.dt,
            "bounds": [list(b) for b in self.bounds],
            "default_connectivity_radius": self.default_connectivity_radius,
            "periodic_boundary_conditions": list(self.periodic_boundary_conditions),
            "kinematic_particle_types": list(self.kinematic_particle_types),
            "num_particle_types": self.num_particle_types,
            "context_size": self.context_size,
            "step_context_size": self.step_context_size,
        }
        if self.sequence_length is not None:
            out["sequence_length"] = self.sequence_length
        for key in STATISTICS_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        if self.gravity is not None:
            out["gravity"] = list(self.gravity)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: object = None) -> "DatasetMetadata":
        """Parse and validate a ``metadata.json`` object.

        Args:
            d: the decoded JSON object.
            source: where it came from (a path), named in every error.

        Raises:
            GnsInputError: a missing required key or a value of the wrong type, length or range.
        """
        if not isinstance(d, Mapping):
            raise GnsInputError("metadata must be a JSON object", file=source,
                                expected="object", found=type(d).__name__)
        d = _select_section(d)
        for key in _REQUIRED_KEYS:
            if key not in d:
                raise GnsInputError("missing required metadata key", file=source, key=key)
        values = _parse(d, source)
        extra = {k: v for k, v in d.items() if k not in _OWN_KEYS}
        values["extra"] = extra
        _validate_values(values, source)
        return cls(**values)

    # ---------------------------------------------------------------- statistics
    def has_statistics(self) -> bool:
        """True when all four normalization statistics are present."""
        return all(getattr(self, key) is not None for key in STATISTICS_KEYS)

    def with_statistics(self, stats: Mapping[str, list[float]]) -> "DatasetMetadata":
        """A copy with ``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` taken from ``stats``."""
        missing = [k for k in STATISTICS_KEYS if k not in stats]
        if missing:
            raise GnsInputError("statistics are incomplete", key=missing[0],
                                expected=list(STATISTICS_KEYS), found=sorted(stats))
        return dataclasses.replace(self, **{k: [float(x) for x in stats[k]] for k in STATISTICS_KEYS})

    @property
    def periodic(self) -> list[bool]:
        """Alias of ``periodic_boundary_conditions``."""
        return list(self.periodic_boundary_conditions)


def load_metadata(dataset_dir: str | os.PathLike) -> DatasetMetadata:
    """Read and validate ``<dataset_dir>/metadata.json``.

    Raises:
        GnsInputError: the file is missing or not JSON, or a key is missing or invalid; the
            message names the file and the key.
    """
    path = Path(dataset_dir) / METADATA_FILE
    if not path.is_file():
        raise GnsInputError("dataset has no metadata file", file=path,
                            expected=f"{METADATA_FILE} beside the split files",
                            found=_listing(Path(dataset_dir)))
    try:
        with path.open("r", encoding="utf-8") as fp:
            raw = json.load(fp)
    except json.JSONDecodeError as exc:
        raise GnsInputError(f"not valid JSON: {exc}", file=path) from None
    return DatasetMetadata.from_dict(raw, source=path)


def save_metadata(meta: DatasetMetadata, dataset_dir: str | os.PathLike) -> Path:
    """Write ``<dataset_dir>/metadata.json`` atomically (temporary file, then ``os.replace``).

    Returns:
        The path written.
    """
    return write_json_atomic(Path(dataset_dir) / METADATA_FILE, meta.to_dict())


# -------------------------------------------------------------------- parsing helpers
def _select_section(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """Some geoelements datasets nest the metadata per purpose ({"train": {...}, "rollout": ...})."""
    if "dim" not in d and isinstance(d.get("train"), Mapping) and "dim" in d["train"]:
        return d["train"]
    return d


def _parse(d: Mapping[str, Any], source: object) -> dict[str, Any]:
    """Convert the JSON values of the keys we own to Python types (validation follows)."""
    dim = _as_int(d["dim"], "dim", source)
    values: dict[str, Any] = {
        "dim": dim,
        "dt": _as_float(d["dt"], "dt", source),
        "bounds": _as_bounds(d["bounds"], source),
        "sequence_length": _sequence_length(d, source),
        "default_connectivity_radius": _as_float(
            d["default_connectivity_radius"], "default_connectivity_radius", source),
        "periodic_boundary_conditions": _as_bools(
            d.get("periodic_boundary_conditions", [False] * dim), "periodic_boundary_conditions",
            source),
        "kinematic_particle_types": _as_ints(
            d.get("kinematic_particle_types", list(DEFAULT_KINEMATIC_PARTICLE_TYPES)),
            "kinematic_particle_types", source),
        "num_particle_types": _as_int(d.get("num_particle_types", DEFAULT_NUM_PARTICLE_TYPES),
                                      "num_particle_types", source),
        "context_size": _as_int(d.get("context_size", 0), "context_size", source),
        "step_context_size": _as_int(d.get("step_context_size", _default_step_context_size(d)),
                                     "step_context_size", source),
        "gravity": None if d.get("gravity") is None else _as_floats(d["gravity"], "gravity", source),
    }
    for key in STATISTICS_KEYS:
        values[key] = None if d.get(key) is None else _as_floats(d[key], key, source)
    return values


def _sequence_length(d: Mapping[str, Any], source: object) -> int | None:
    if d.get("sequence_length") is not None:
        return _as_int(d["sequence_length"], "sequence_length", source)
    if d.get("sequence_length_train") is not None:
        # LagrangeBench counts frames; DeepMind (and we) count steps.
        return _as_int(d["sequence_length_train"], "sequence_length_train", source) - 1
    return None


def _default_step_context_size(d: Mapping[str, Any]) -> int:
    # DeepMind datasets with per-step globals announce them only through context_mean/std.
    mean = d.get("context_mean")
    return len(mean) if isinstance(mean, list) else 0


def _as_int(value: Any, key: str, source: object) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value)):
        raise GnsInputError("must be an integer", file=source, key=key, expected="integer",
                            found=repr(value))
    return int(value)


def _as_float(value: Any, key: str, source: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GnsInputError("must be a number", file=source, key=key, expected="number",
                            found=repr(value))
    return float(value)


def _as_floats(value: Any, key: str, source: object) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise GnsInputError("must be a list of numbers", file=source, key=key,
                            expected="list", found=repr(value))
    return [_as_float(v, key, source) for v in value]


def _as_ints(value: Any, key: str, source: object) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise GnsInputError("must be a list of integers", file=source, key=key,
                            expected="list", found=repr(value))
    return [_as_int(v, key, source) for v in value]


def _as_bools(value: Any, key: str, source: object) -> list[bool]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, bool) or v in (0, 1) for v in value):
        raise GnsInputError("must be a list of booleans", file=source, key=key,
                            expected="list of true/false", found=repr(value))
    return [bool(v) for v in value]


def _as_bounds(value: Any, source: object) -> list[list[float]]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(b, (list, tuple)) and len(b) == 2 for b in value):
        raise GnsInputError("must be a list of [lo, hi] pairs", file=source, key="bounds",
                            expected="D pairs [lo, hi]", found=repr(value))
    return [[_as_float(lo, "bounds", source), _as_float(hi, "bounds", source)] for lo, hi in value]


# -------------------------------------------------------------------- validation
def _validate(meta: DatasetMetadata, source: object) -> None:
    values = {f.name: getattr(meta, f.name) for f in dataclasses.fields(meta)}
    _validate_values(values, source)


def _validate_values(v: Mapping[str, Any], source: object) -> None:
    """Check ranges, lengths against ``dim`` and finiteness of already-typed values."""
    dim = v["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise GnsInputError("must be a positive integer", file=source, key="dim",
                            expected=">= 1", found=repr(dim))
    _check_positive(v["dt"], "dt", source)
    _check_positive(v["default_connectivity_radius"], "default_connectivity_radius", source)
    _check_bounds(v["bounds"], dim, source)
    if v["sequence_length"] is not None and v["sequence_length"] < 1:
        raise GnsInputError("must be a positive number of steps", file=source,
                            key="sequence_length", expected=">= 1", found=v["sequence_length"])
    _check_length(v["periodic_boundary_conditions"], dim, "periodic_boundary_conditions", source)
    for key in (*STATISTICS_KEYS, "gravity"):
        if v[key] is not None:
            _check_length(v[key], dim, key, source)
            _check_finite(v[key], key, source)
    for key in ("vel_std", "acc_std"):
        # Zero is allowed (a dimension without motion); the normalizer adds the noise variance.
        if v[key] is not None and any(s < 0 for s in v[key]):
            raise GnsInputError("standard deviations must be non-negative", file=source, key=key,
                                found=v[key])
    n_types = v["num_particle_types"]
    if n_types < 1:
        raise GnsInputError("must be positive", file=source, key="num_particle_types",
                            found=n_types)
    bad = [t for t in v["kinematic_particle_types"] if not 0 <= t < n_types]
    if bad:
        raise GnsInputError("kinematic particle types must lie in [0, num_particle_types)",
                            file=source, key="kinematic_particle_types",
                            expected=f"0 <= type < {n_types}", found=bad)
    for key in ("context_size", "step_context_size"):
        if v[key] < 0:
            raise GnsInputError("must be non-negative", file=source, key=key, found=v[key])


def _check_positive(value: float, key: str, source: object) -> None:
    if not math.isfinite(value) or value <= 0:
        raise GnsInputError("must be a finite positive number", file=source, key=key,
                            expected="> 0", found=value)


def _check_length(values: list, dim: int, key: str, source: object) -> None:
    if len(values) != dim:
        raise GnsInputError(f"needs one entry per dimension (dim={dim})", file=source, key=key,
                            expected=f"{dim} values", found=f"{len(values)} values")


def _check_finite(values: list[float], key: str, source: object) -> None:
    if not all(math.isfinite(x) for x in values):
        raise GnsInputError("values must be finite", file=source, key=key, found=values)


def _check_bounds(bounds: list[list[float]], dim: int, source: object) -> None:
    _check_length(bounds, dim, "bounds", source)
    for d, (lo, hi) in enumerate(bounds):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise GnsInputError(f"bounds of dimension {d} must be finite", file=source,
                                key="bounds", found=[lo, hi])
        if not lo < hi:
            raise GnsInputError(f"bounds of dimension {d} must satisfy lo < hi", file=source,
                                key="bounds", expected="lo < hi", found=[lo, hi])


def _listing(directory: Path) -> str:
    if not directory.is_dir():
        return "no such directory"
    names = sorted(p.name for p in directory.iterdir())
    return ", ".join(names) if names else "an empty directory"

"""Mesh rollouts as per-frame mesh files for ParaView (VTK XML) and trimesh (PLY).

For each exported series (the prediction, the ground truth, or both) this writes, in
``out_dir``::

    <key>_<which>.pvd                         ParaView collection: every frame with its time t * dt
    <key>_<which>/<key>_<which>_<t:05d>.vtu   VTK XML UnstructuredGrid of trajectory step t
    <key>_<which>/<key>_<which>_<t:05d>.ply   binary PLY through trimesh

Opening the ``.pvd`` in ParaView loads the whole time series at once. Every ``.vtu`` carries
these point data arrays (3-vectors are what ParaView's glyph and stream filters expect, so 2D
vectors are padded with a zero z component):

- ``node_type`` Int32, ``mesh_pos`` Float32 3-vector;
- each rollout field of this series: scalar for ``F = 1`` (pressure), 3-vector for ``F`` in
  {2, 3} (velocity, world_pos), ``F`` components otherwise;
- ``<field>_error`` Float32 scalar, ``|pred - truth|`` per node (the same in both series).

Points are the series' own ``world_pos`` when the rollout has one (cloth), else ``mesh_pos``
with ``z = 0`` (flow). The ``.vtu`` writer and reader (:func:`write_vtu`, :func:`read_vtu`) use
only the standard library and numpy: arrays are raw little-endian bytes in base64 (VTK's
"binary" inline format, with a UInt64 byte count in front) or plain ASCII.

The ``.ply`` holds the same points and the surface triangles (the boundary faces of a
tetrahedral mesh), the scalar arrays as extra float vertex properties (``node_type``,
``<field>`` or ``<field>_magnitude``, ``<field>_error``; trimesh keeps them under
``mesh.metadata["_ply_raw"]["vertex"]["data"]``), and for flow meshes vertex colours of the
target field's magnitude (viridis, scaled to the ground truth's range over all frames).
"""

from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gns.atomic import write_bytes_atomic
from gns.errors import GnsInputError
from gns.rollout_io import RolloutRecord, read_rollout

__all__ = ["export_rollout", "export_mesh_rollout", "write_vtu", "read_vtu", "write_pvd", "read_pvd",
           "surface_triangles", "EXPORT_FORMATS", "MeshView", "mesh_record", "read_mesh_rollout"]

EXPORT_FORMATS = ("vtu", "ply")
_WHICH = {"predicted": ("predicted",), "ground_truth": ("ground_truth",), "both": ("predicted", "ground_truth")}
# VTK cell type ids (vtkCellType.h) by nodes per cell: triangle and tetrahedron.
_VTK_CELL_TYPES = {3: 5, 4: 10}
# numpy dtype <-> VTK XML type names; little-endian, as declared in every file written.
_VTK_TYPES = {np.dtype("float32"): "Float32", np.dtype("float64"): "Float64", np.dtype("int32"): "Int32",
              np.dtype("int64"): "Int64", np.dtype("uint8"): "UInt8"}
_NUMPY_TYPES = {name: dtype.newbyteorder("<") for dtype, name in _VTK_TYPES.items()}
# Size of the byte-count header in front of each binary array (declared as header_type).
_HEADER = np.dtype("<u8")


# ----------------------------------------------------------------------- mesh records


def mesh_record(key: str, mesh_pos: Any, cells: Any, node_type: Any, predicted: Mapping[str, Any],
                ground_truth: Mapping[str, Any], **sources: Mapping[str, Any]) -> RolloutRecord:
    """A :class:`gns.rollout_io.RolloutRecord` of a mesh: attributes ``mesh_pos``, ``node_type``, link ``cells``.

    Args:
        key: trajectory name; mesh_pos: ``(N, Dm)``; cells: ``(C, K)``; node_type: ``(N,)``.
        predicted, ground_truth, **sources: field -> ``(T, N, F)`` per source.
    """
    return RolloutRecord(str(key), {"predicted": dict(predicted), "ground_truth": dict(ground_truth),
                                    **{k: dict(v) for k, v in sources.items()}},
                         {"mesh_pos": mesh_pos, "node_type": node_type}, {"cells": cells})


class MeshView:
    """A validated rollout record of a mesh, with its mesh arrays as attributes.

    Attributes:
        record: the validated record; key, mesh_pos ``(N, Dm)`` float32, cells ``(C, K)`` int32,
        node_type ``(N,)`` int32, predicted / ground_truth / sources, fields, num_frames.

    Raises:
        GnsInputError: the record is not of a mesh (no ``mesh_pos``, ``node_type`` or ``cells``).
    """

    def __init__(self, record: "RolloutRecord | MeshView", file: object = None) -> None:
        if isinstance(record, MeshView):
            record = record.record
        record = record.validate(file=file)
        for part, name in (("static", "mesh_pos"), ("static", "node_type"), ("links", "cells")):
            if name not in getattr(record, part):
                raise GnsInputError("not a mesh rollout: an array is missing", file=file,
                                    key=f"{record.key}/{part}/{name}", expected="mesh_pos, node_type and cells",
                                    found=sorted(getattr(record, part)))
        mesh_pos, cells = record.static["mesh_pos"], record.links["cells"]
        if mesh_pos.ndim != 2 or mesh_pos.shape[1] not in (2, 3):
            raise GnsInputError("mesh_pos must be (N, Dm) with Dm in {2, 3}", file=file,
                                key=f"{record.key}/static/mesh_pos", expected="(N, 2) or (N, 3)", found=mesh_pos.shape)
        if cells.shape[1] not in (3, 4):
            raise GnsInputError("cells must be (C, K) with K = 3 (triangles) or 4 (tetrahedra)", file=file,
                                key=f"{record.key}/links/cells", expected="(C, 3) or (C, 4)", found=cells.shape)
        self.record, self.key = record, record.key
        self.mesh_pos, self.cells, self.node_type = mesh_pos, cells, record.static["node_type"]
        self.sources = record.sources

    @property
    def predicted(self) -> dict[str, np.ndarray]:
        return self.record.predicted

    @property
    def ground_truth(self) -> dict[str, np.ndarray]:
        return self.record.ground_truth

    @property
    def fields(self) -> list[str]:
        return self.record.fields

    @property
    def num_frames(self) -> int:
        return self.record.num_frames


def read_mesh_rollout(path: str | os.PathLike, trajectory: int | str = 0) -> tuple[MeshView, dict[str, Any]]:
    """One record of a mesh rollout file as a :class:`MeshView`, and the file's attributes.

    Raises:
        GnsInputError: the file is not a mesh rollout file, or as :func:`gns.rollout_io.read_rollout`.
    """
    record, attrs = read_rollout(path, trajectory)
    if attrs["simulator"] != "mesh":
        raise GnsInputError("not a mesh rollout file", file=path, key="simulator", expected="mesh",
                            found=attrs["simulator"])
    return MeshView(record, file=path), attrs


# ----------------------------------------------------------------------- rollout export


def export_rollout(rollout_file: str | os.PathLike, out_dir: str | os.PathLike, *, trajectory: int | str = 0,
                   which: str = "predicted", formats: Sequence[str] = EXPORT_FORMATS, every: int = 1,
                   encoding: str = "binary") -> list[Path]:
    """Export one trajectory of a mesh rollout file to per-frame ``.vtu`` (+ ``.pvd``) and ``.ply`` files.

    Args:
        rollout_file: a mesh rollout file (:mod:`gns.rollout_io`).
        out_dir: destination folder (created).
        trajectory: index in the file (0 = first) or key (``"00003"``).
        which: ``"predicted"``, ``"ground_truth"`` or ``"both"`` (two series, two ``.pvd`` files).
        formats: any of ``"vtu"`` (with its ``.pvd``) and ``"ply"``.
        every: export every ``every``-th frame (the last frame is not forced in).
        encoding: ``.vtu`` array encoding, ``"binary"`` (base64) or ``"ascii"``.

    Returns:
        The files written, per series: the frames' ``.vtu`` files, the ``.pvd``, the ``.ply`` files.

    Raises:
        GnsInputError: a bad file or trajectory (see :func:`read_mesh_rollout`), or a bad
            ``which``, ``formats``, ``every`` or ``encoding``.
    """
    rollout, attrs = read_mesh_rollout(rollout_file, trajectory)
    return export_mesh_rollout(rollout, out_dir, dt=attrs["dt"], which=which, formats=formats, every=every,
                               color_field=attrs["target_field"], encoding=encoding)


def export_mesh_rollout(rollout: RolloutRecord | MeshView, out_dir: str | os.PathLike, *, dt: float,
                        which: str = "predicted",
                        formats: Sequence[str] = EXPORT_FORMATS, every: int = 1, color_field: str | None = None,
                        encoding: str = "binary") -> list[Path]:
    """Export an in-memory mesh record (see :func:`export_rollout` and the module notes).

    Args:
        rollout: the trajectory.
        out_dir: destination folder (created).
        dt: seconds between frames (``.pvd`` times are ``t * dt``).
        which: ``"predicted"``, ``"ground_truth"`` or ``"both"``.
        formats: any of ``"vtu"`` and ``"ply"``.
        every: export every ``every``-th frame.
        color_field: field whose magnitude colours the ``.ply`` vertices of a flow mesh (points
            from ``mesh_pos``); ignored for meshes that move (their shape already shows the motion).
        encoding: ``"binary"`` or ``"ascii"`` ``.vtu`` arrays.

    Returns:
        The files written.
    """
    formats = _check_options(which, formats, every, encoding)
    rollout = MeshView(rollout)
    out_dir = Path(out_dir)
    steps = np.arange(0, rollout.num_frames, every)
    errors = {name: np.linalg.norm(rollout.predicted[name].astype(np.float64)
                                   - rollout.ground_truth[name], axis=-1).astype(np.float32)
              for name in rollout.fields}                                                    # (T, N) each
    moving = _position_field(rollout)
    colors = None
    if "ply" in formats and moving is None and color_field in rollout.fields:
        colors = _ColorScale(rollout.ground_truth[color_field])
    written: list[Path] = []
    for source in _WHICH[which]:
        name = f"{rollout.key}_{source}"
        frame_dir = out_dir / name
        fields = rollout.sources[source]
        vtus: list[Path] = []
        plys: list[Path] = []
        for t in steps:
            points = _pad3(fields[moving][t] if moving else rollout.mesh_pos)                 # (N, 3)
            stem = frame_dir / f"{name}_{t:05d}"
            if "vtu" in formats:
                data = _vtu_point_data(rollout, fields, errors, int(t))
                vtus.append(write_vtu(stem.with_suffix(".vtu"), points, rollout.cells, data, encoding=encoding))
            if "ply" in formats:
                color = None if colors is None else colors(fields[color_field][t])
                plys.append(_write_ply(stem.with_suffix(".ply"), points, rollout, fields, errors, int(t), color))
        written += vtus
        if vtus:
            # Relative names, so that the folder can be moved or copied to another machine as a whole.
            entries = [(float(t) * dt, p.relative_to(out_dir).as_posix()) for t, p in zip(steps, vtus)]
            written.append(write_pvd(out_dir / f"{name}.pvd", entries))
        written += plys
    return written


def _check_options(which: str, formats: Sequence[str], every: int, encoding: str) -> tuple[str, ...]:
    if which not in _WHICH:
        raise GnsInputError("unknown series to export", key="which", expected=" | ".join(_WHICH), found=which)
    formats = tuple(str(f).lower().lstrip(".") for f in ((formats,) if isinstance(formats, str) else formats))
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise GnsInputError("unknown export format", key="formats", expected=list(EXPORT_FORMATS),
                            found=unknown or "none")
    if int(every) != every or every < 1:
        raise GnsInputError("every must be an integer >= 1", key="every", expected=">= 1", found=every)
    if encoding not in ("binary", "ascii"):
        raise GnsInputError("unknown .vtu encoding", key="encoding", expected="binary | ascii", found=encoding)
    return formats


def _position_field(rollout: MeshView) -> str | None:
    """The field holding the nodes' world positions, if the mesh moves (cloth), else None."""
    if "world_pos" in rollout.predicted and rollout.predicted["world_pos"].shape[-1] in (2, 3):
        return "world_pos"
    return None


def _pad3(values: np.ndarray) -> np.ndarray:
    """``(N, 3)`` float32 from ``(N, 2)`` (z = 0) or ``(N, 3)``."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[1] == 3:
        return values
    return np.concatenate([values, np.zeros((values.shape[0], 3 - values.shape[1]), np.float32)], axis=1)


def _vtu_point_data(rollout: MeshView, fields: Mapping[str, np.ndarray], errors: Mapping[str, np.ndarray],
                    t: int) -> dict[str, np.ndarray]:
    """Point data of frame ``t`` of one series: types, mesh positions, fields, per-field errors."""
    data: dict[str, np.ndarray] = {"node_type": rollout.node_type.astype(np.int32),
                                   "mesh_pos": _pad3(rollout.mesh_pos)}
    for name, values in fields.items():
        frame = values[t]                                                                    # (N, F)
        width = frame.shape[1]
        data[name] = frame[:, 0] if width == 1 else (_pad3(frame) if width <= 3 else frame)
    for name, error in errors.items():
        data[f"{name}_error"] = error[t]
    return data


class _ColorScale:
    """Maps a field's magnitude to viridis RGBA bytes, over the range of a reference ``(T, N, F)``."""

    def __init__(self, reference: np.ndarray) -> None:
        magnitude = _magnitude(reference)
        finite = magnitude[np.isfinite(magnitude)]
        self.lo = float(finite.min()) if finite.size else 0.0
        self.hi = float(finite.max()) if finite.size else 1.0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``(N, 4)`` uint8 colours of ``(N, F)`` values."""
        from matplotlib import colormaps

        scaled = (_magnitude(values) - self.lo) / max(self.hi - self.lo, 1e-30)
        return (colormaps["viridis"](np.clip(np.nan_to_num(scaled), 0.0, 1.0)) * 255).round().astype(np.uint8)


def _magnitude(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[..., 0] if values.shape[-1] == 1 else np.linalg.norm(values, axis=-1)


def _write_ply(path: Path, points: np.ndarray, rollout: MeshView, fields: Mapping[str, np.ndarray],
               errors: Mapping[str, np.ndarray], t: int, colors: np.ndarray | None) -> Path:
    """One frame as a binary PLY with scalar vertex properties (and colours for flow meshes)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=points, faces=surface_triangles(rollout.cells), process=False,
                           validate=False, vertex_colors=colors)
    attributes = {"node_type": rollout.node_type.astype(np.int32)}
    for name, values in fields.items():
        key = name if values.shape[-1] == 1 else f"{name}_magnitude"
        attributes[key] = _magnitude(values[t]).astype(np.float32)
    for name, error in errors.items():
        attributes[f"{name}_error"] = error[t]
    mesh.vertex_attributes.update(attributes)
    return write_bytes_atomic(path, mesh.export(file_type="ply", encoding="binary"))


def surface_triangles(cells: np.ndarray) -> np.ndarray:
    """Triangles to draw for a mesh: the cells themselves, or the boundary faces of tetrahedra.

    Args:
        cells: ``(C, 3)`` triangles or ``(C, 4)`` tetrahedra.

    Returns:
        ``(S, 3)`` int64 node indices; for tetrahedra, the faces that belong to one cell only.

    Raises:
        GnsInputError: cells that are neither triangles nor tetrahedra.
    """
    cells = np.asarray(cells, dtype=np.int64)
    if cells.ndim != 2 or cells.shape[1] not in (3, 4):
        raise GnsInputError("cells must be triangles or tetrahedra", key="cells", expected="(C, 3) or (C, 4)",
                            found=cells.shape)
    if cells.shape[1] == 3:
        return cells
    faces = cells[:, [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]].reshape(-1, 3)             # (4C, 3)
    _, index, counts = np.unique(np.sort(faces, axis=1), axis=0, return_index=True, return_counts=True)
    return faces[np.sort(index[counts == 1])]


# ---------------------------------------------------------------------------- VTK XML


def write_vtu(path: str | os.PathLike, points: np.ndarray, cells: np.ndarray,
              point_data: Mapping[str, np.ndarray] | None = None, *, encoding: str = "binary") -> Path:
    """Write a VTK XML UnstructuredGrid (``.vtu``) of one cell type, atomically.

    Args:
        path: destination.
        points: ``(N, 3)`` (or ``(N, 2)``, written with z = 0) coordinates.
        cells: ``(C, 3)`` triangles or ``(C, 4)`` tetrahedra.
        point_data: name to ``(N,)`` or ``(N, M)`` array of float32/64 or int32/64 (other
            dtypes are converted: floats to float32, integers to int64).
        encoding: ``"binary"`` (base64, compact and exact) or ``"ascii"`` (readable).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        GnsInputError: cells of another size, or a point array not of length ``N``.
    """
    path = Path(path)
    points = _pad3(np.asarray(points))
    cells = np.asarray(cells, dtype=np.int64)
    if cells.ndim != 2 or cells.shape[1] not in _VTK_CELL_TYPES:
        raise GnsInputError("cells must be triangles or tetrahedra", file=path, key="cells",
                            expected="(C, 3) or (C, 4)", found=cells.shape)
    num_points, num_cells = points.shape[0], cells.shape[0]
    root = ET.Element("VTKFile", type="UnstructuredGrid", version="1.0", byte_order="LittleEndian",
                      header_type="UInt64")
    piece = ET.SubElement(ET.SubElement(root, "UnstructuredGrid"), "Piece", NumberOfPoints=str(num_points),
                          NumberOfCells=str(num_cells))
    data_node = ET.SubElement(piece, "PointData")
    for name, values in (point_data or {}).items():
        values = _vtk_array(values)
        if values.shape[0] != num_points or values.ndim > 2:
            raise GnsInputError("point data must have one row per point", file=path, key=name,
                                expected=f"({num_points},) or ({num_points}, M)", found=values.shape)
        data_node.append(_data_array(name, values, encoding))
    ET.SubElement(piece, "CellData")
    ET.SubElement(piece, "Points").append(_data_array("Points", points, encoding))
    cell_node = ET.SubElement(piece, "Cells")
    cell_node.append(_data_array("connectivity", cells.reshape(-1), encoding))
    cell_node.append(_data_array("offsets", np.arange(1, num_cells + 1, dtype=np.int64) * cells.shape[1], encoding))
    cell_node.append(_data_array("types", np.full(num_cells, _VTK_CELL_TYPES[cells.shape[1]], np.uint8), encoding))
    return write_bytes_atomic(path, _xml_bytes(root))


def read_vtu(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Read a ``.vtu`` written by :func:`write_vtu` (inline ASCII or uncompressed base64 arrays).

    Args:
        path: the file.

    Returns:
        ``points`` ``(N, 3)``, ``cells`` ``(C, K)`` int64 (one cell size), and the point data,
        name to ``(N,)`` or ``(N, M)`` arrays in their stored dtypes.

    Raises:
        GnsInputError: not a VTK XML UnstructuredGrid, appended or compressed data, mixed cell sizes.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise GnsInputError(f"not readable XML ({err})", file=path, expected="VTK XML UnstructuredGrid") from None
    if root.tag != "VTKFile" or root.get("type") != "UnstructuredGrid" or root.get("compressor"):
        raise GnsInputError("not an uncompressed VTK XML UnstructuredGrid", file=path, key="VTKFile",
                            expected="type=UnstructuredGrid, no compressor",
                            found=f"{root.tag} type={root.get('type')} compressor={root.get('compressor')}")
    # VTK's default byte-count header is UInt32; write_vtu declares UInt64.
    header = np.dtype("<u8" if root.get("header_type", "UInt32") == "UInt64" else "<u4")
    piece = root.find("UnstructuredGrid/Piece")
    if piece is None:
        raise GnsInputError("no Piece element", file=path, key="UnstructuredGrid/Piece")
    num_points = int(piece.get("NumberOfPoints", "0"))
    arrays = {}
    for section in ("PointData", "Points", "Cells"):
        for node in piece.findall(f"{section}/DataArray"):
            arrays[(section, node.get("Name"))] = _parse_data_array(node, header, path)
    points = arrays[("Points", "Points")].reshape(num_points, 3)
    offsets = arrays[("Cells", "offsets")].astype(np.int64)
    sizes = np.diff(np.concatenate([[0], offsets]))
    if sizes.size and np.any(sizes != sizes[0]):
        raise GnsInputError("cells of different sizes are not supported", file=path, key="Cells/offsets",
                            expected="one cell size", found=sorted(set(sizes.tolist())))
    width = int(sizes[0]) if sizes.size else 3
    cells = arrays[("Cells", "connectivity")].astype(np.int64).reshape(-1, width)
    point_data = {name: values.reshape(num_points, -1) if values.size != num_points else values
                  for (section, name), values in arrays.items() if section == "PointData"}
    return points, cells, point_data


def write_pvd(path: str | os.PathLike, datasets: Sequence[tuple[float, str | os.PathLike]]) -> Path:
    """Write a ParaView collection (``.pvd``) listing time steps and their files, atomically.

    Args:
        path: destination.
        datasets: ``(time, file)`` pairs; relative file names resolve against ``path``'s folder.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    root = ET.Element("VTKFile", type="Collection", version="0.1", byte_order="LittleEndian")
    collection = ET.SubElement(root, "Collection")
    for time, file in datasets:
        ET.SubElement(collection, "DataSet", timestep=repr(float(time)), group="", part="0",
                      file=Path(file).as_posix())
    return write_bytes_atomic(path, _xml_bytes(root))


def read_pvd(path: str | os.PathLike) -> list[tuple[float, str]]:
    """``(time, file)`` pairs of a ``.pvd`` collection, in file order."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise GnsInputError(f"not readable XML ({err})", file=path, expected="a .pvd collection") from None
    return [(float(d.get("timestep", "0")), str(d.get("file"))) for d in root.iterfind("Collection/DataSet")]


def _vtk_array(values: Any) -> np.ndarray:
    """``values`` in a dtype VTK names: float32/64 and int32/64 kept, others widened or narrowed."""
    array = np.asarray(values)
    if array.dtype in _VTK_TYPES:
        return array
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    raise GnsInputError("point data must be numeric", key="point_data", expected="float or int", found=array.dtype)


def _data_array(name: str, values: np.ndarray, encoding: str) -> ET.Element:
    values = np.ascontiguousarray(values)
    node = ET.Element("DataArray", type=_VTK_TYPES[np.dtype(values.dtype.name)],
                      Name=name, format=encoding)
    if values.ndim == 2:
        node.set("NumberOfComponents", str(values.shape[1]))
    flat = values.reshape(-1)
    if encoding == "ascii":
        # repr round-trips floats exactly; ints print as ints.
        node.text = " ".join(repr(v) for v in flat.tolist())
    else:
        raw = flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
        # Uncompressed binary: byte count and data are base64-encoded as one stream.
        node.text = base64.b64encode(np.array([len(raw)], _HEADER).tobytes() + raw).decode("ascii")
    return node


def _parse_data_array(node: ET.Element, header: np.dtype, path: Path) -> np.ndarray:
    name = node.get("Name")
    vtk_type, fmt = node.get("type"), node.get("format", "ascii")
    if vtk_type not in _NUMPY_TYPES:
        raise GnsInputError("unsupported DataArray type", file=path, key=name, expected=list(_NUMPY_TYPES),
                            found=vtk_type)
    dtype = _NUMPY_TYPES[vtk_type]
    text = (node.text or "").strip()
    if fmt == "ascii":
        values = np.array(text.split(), dtype=np.float64 if dtype.kind == "f" else np.int64).astype(dtype)
    elif fmt == "binary":
        raw = base64.b64decode(text)
        size = int(np.frombuffer(raw[:header.itemsize], header)[0])
        if len(raw) == header.itemsize and size:
            # Some writers encode the byte count as its own padded base64 block; decoding stops at its "=".
            raw = raw + base64.b64decode(text[4 * -(-header.itemsize // 3):])
        values = np.frombuffer(raw[header.itemsize:header.itemsize + size], dtype).copy()
    else:
        raise GnsInputError("only inline ascii or binary DataArrays are supported", file=path, key=name,
                            expected="format=ascii | binary", found=fmt)
    components = int(node.get("NumberOfComponents", "1"))
    return values.reshape(-1, components) if components > 1 else values


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

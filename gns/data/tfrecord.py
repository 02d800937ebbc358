"""DeepMind ``learning_to_simulate`` TFRecord datasets, read and written without TensorFlow.

Layout: ``{train,valid,test}.tfrecord`` beside a ``metadata.json``. Each record is a serialized
``tf.train.SequenceExample`` with

- context features ``key`` (int64_list, the trajectory index) and ``particle_type``
  (bytes_list holding one ``int64`` array's raw bytes, shape ``(N,)``);
- feature list ``position``: one bytes feature per frame, the raw bytes of ``N * D`` float32
  values; optional feature list ``step_context``: one float32 bytes feature per frame.

We add one optional context feature, ``context`` (bytes_list, float32 ``(G,)``), for
per-trajectory globals; DeepMind's parser ignores context features it was not asked for.

TFRecord framing, per record: ``uint64`` little-endian length, ``uint32`` masked CRC-32C of
those 8 bytes, the data, ``uint32`` masked CRC-32C of the data. The protobuf wire format is
coded by hand below (varints and length-delimited fields are all these messages need).
The plain ``tf.train.Example`` codec here serves DeepMind's ``meshgraphnets`` records
(``gns.data.meshgraphnets``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from gns.data.hdf5 import Trajectory, available_splits, open_split, validate_trajectory
from gns.atomic import atomic_path
from gns.data.metadata import load_metadata, save_metadata
from gns.errors import GnsInputError

TFRECORD_SUFFIX = ".tfrecord"

# ============================================================================ CRC-32C
_CRC32C_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reversed
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)
# Below this many bytes the plain table loop beats the vectorized lanes.
_LANES_MIN_BYTES = 32768
_MAX_LANES = 4096


def _crc_register_loop(register: int, data: bytes | memoryview) -> int:
    """Advance the CRC register over ``data``, one table lookup per byte."""
    table = _CRC_TABLE
    for byte in data:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


def _apply_gf2(columns: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Multiply 32-bit vectors by a 32x32 GF(2) matrix given as its 32 column words."""
    out = np.zeros_like(vectors)
    for bit in range(32):
        out ^= columns[bit] * ((vectors >> np.uint32(bit)) & np.uint32(1))
    return out


def _zero_shift_matrix(num_bytes: int) -> np.ndarray:
    """Columns of the linear map 'advance the register over ``num_bytes`` zero bytes'."""
    identity = np.array([1 << b for b in range(32)], dtype=np.uint32)
    one_byte = np.array([_crc_register_loop(1 << b, b"\0") for b in range(32)], dtype=np.uint32)
    result, power = identity, one_byte
    while num_bytes:  # binary exponentiation: result = one_byte ** num_bytes
        if num_bytes & 1:
            result = _apply_gf2(power, result)
        power = _apply_gf2(power, power)
        num_bytes >>= 1
    return result


def _crc_register_lanes(register: int, data: memoryview) -> int:
    """Same as ``_crc_register_loop``, but vectorized over independent lanes.

    The register update is linear over GF(2), so the CRC of ``A || B`` is
    ``shift_{|B|}(crc(A)) ^ crc_from_zero(B)``. We cut the data into ``lanes`` equal pieces,
    run all pieces at once with numpy (one table lookup per byte *column*), then fold
    neighbouring pieces pairwise, doubling the piece length at each level.
    """
    lanes = _MAX_LANES
    while lanes > 1 and len(data) // lanes < 64:
        lanes //= 2
    piece = len(data) // lanes
    columns = np.frombuffer(data, dtype=np.uint8, count=lanes * piece).reshape(lanes, piece)
    columns = np.ascontiguousarray(columns.T)  # (piece, lanes): one row per step of all lanes
    registers = np.zeros(lanes, dtype=np.uint32)
    registers[0] = register  # only the first piece starts from the running register
    for column in columns:
        registers = _CRC_TABLE_NP[(registers ^ column) & np.uint32(0xFF)] ^ (registers >> np.uint32(8))
    shift = _zero_shift_matrix(piece)
    while len(registers) > 1:
        registers = _apply_gf2(shift, registers[0::2]) ^ registers[1::2]
        shift = _apply_gf2(shift, shift)  # pieces are now twice as long
    return _crc_register_loop(int(registers[0]), data[lanes * piece:])


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli) of ``data``, as used by TFRecord."""
    view = memoryview(data).cast("B")
    if len(view) < _LANES_MIN_BYTES:
        register = _crc_register_loop(_U32, view)
    else:
        register = _crc_register_lanes(_U32, view)
    return register ^ _U32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits, then add a constant (mod 2^32)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


# ============================================================================ framing
def iter_records(path: str | os.PathLike, verify_crc: bool = True) -> Iterator[bytes]:
    """Yield the raw records of a TFRecord file.

    Raises:
        GnsInputError: truncated file or CRC mismatch (naming the record index).
    """
    path = Path(path)
    with path.open("rb") as fp:
        index = 0
        while True:
            header = fp.read(12)
            if not header:
                return
            if len(header) < 12:
                raise GnsInputError("truncated record header", file=path, key=f"record {index}")
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if verify_crc and masked_crc32c(length_bytes) != length_crc:
                raise GnsInputError("record length CRC mismatch (corrupt file, or not a "
                                    "TFRecord file)", file=path, key=f"record {index}")
            (length,) = struct.unpack("<Q", length_bytes)
            data = fp.read(length)
            footer = fp.read(4)
            if len(data) < length or len(footer) < 4:
                raise GnsInputError("truncated record", file=path, key=f"record {index}",
                                    expected=f"{length} bytes", found=f"{len(data)} bytes")
            if verify_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise GnsInputError("record data CRC mismatch (corrupt file; pass "
                                    "verify_crc=False to skip the check)", file=path,
                                    key=f"record {index}")
            yield data
            index += 1


def count_records(path: str | os.PathLike) -> int:
    """Number of records in a TFRecord file, reading only the headers."""
    return len(record_offsets(path))


def record_offsets(path: str | os.PathLike) -> list[int]:
    """Byte offset of each record's header in a TFRecord file, reading only the headers.

    Raises:
        GnsInputError: a truncated header or record.
    """
    path = Path(path)
    size, offsets, offset = path.stat().st_size, [], 0
    with path.open("rb") as fp:
        while offset < size:
            fp.seek(offset)
            header = fp.read(8)
            if len(header) < 8:
                raise GnsInputError("truncated record header", file=path,
                                    key=f"record {len(offsets)}")
            offsets.append(offset)
            offset += 16 + struct.unpack("<Q", header)[0]
    if offset != size:
        raise GnsInputError("truncated record", file=path, key=f"record {len(offsets) - 1}")
    return offsets


def read_record_at(fp: BinaryIO, offset: int, *, path: Path, index: int,
                   verify_crc: bool = True) -> bytes:
    """The data of the record whose header starts at ``offset`` (see ``record_offsets``).

    Args:
        fp: the TFRecord file, opened in binary mode.
        offset: byte offset of the record's header.
        path, index: the file and the record's index, for error messages.
        verify_crc: check both CRCs.
    """
    fp.seek(offset)
    header = fp.read(12)
    if len(header) < 12:
        raise GnsInputError("truncated record header", file=path, key=f"record {index}")
    if verify_crc and masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
        raise GnsInputError("record length CRC mismatch (corrupt file, or not a TFRecord file)",
                            file=path, key=f"record {index}")
    (length,) = struct.unpack("<Q", header[:8])
    data = fp.read(length)
    footer = fp.read(4)
    if len(data) < length or len(footer) < 4:
        raise GnsInputError("truncated record", file=path, key=f"record {index}",
                            expected=f"{length} bytes", found=f"{len(data)} bytes")
    if verify_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
        raise GnsInputError("record data CRC mismatch (corrupt file; pass verify_crc=False to "
                            "skip the check)", file=path, key=f"record {index}")
    return data


def _write_record(fp: BinaryIO, data: bytes) -> None:
    length_bytes = struct.pack("<Q", len(data))
    fp.write(length_bytes)
    fp.write(struct.pack("<I", masked_crc32c(length_bytes)))
    fp.write(data)
    fp.write(struct.pack("<I", masked_crc32c(data)))


# ============================================================================ protobuf wire format
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """Bytes that are not a valid protobuf message of the expected type."""


@dataclass
class Feature:
    """A ``tf.train.Feature``: ``kind`` is ``"bytes"``, ``"float"``, ``"int64"`` or None (empty)."""

    kind: str | None
    values: list


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise WireFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``: an int for varints, bytes views otherwise."""
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire_type in (_FIXED64, _FIXED32, _LENGTH_DELIMITED):
            if wire_type == _LENGTH_DELIMITED:
                size, pos = _read_varint(buf, pos)
            else:
                size = 8 if wire_type == _FIXED64 else 4
            if pos + size > len(buf):
                raise WireFormatError(f"field {number} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise WireFormatError(f"unsupported wire type {wire_type} (field {number})")
        yield number, wire_type, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_packed_varints(buf: memoryview) -> list[int]:
    values, pos = [], 0
    while pos < len(buf):
        value, pos = _read_varint(buf, pos)
        values.append(_signed64(value))
    return values


def decode_feature(buf: memoryview) -> Feature:
    """Decode a ``tf.train.Feature`` (oneof bytes_list=1, float_list=2, int64_list=3)."""
    feature = Feature(None, [])
    for number, wire_type, payload in _fields(buf):
        if wire_type != _LENGTH_DELIMITED or number not in (1, 2, 3):
            continue  # unknown field: skipped, as protobuf parsers do
        if number == 1:
            values = [bytes(v) for n, w, v in _fields(payload) if n == 1 and w == _LENGTH_DELIMITED]
            feature = Feature("bytes", values)
        elif number == 2:
            floats: list[float] = []
            for n, w, v in _fields(payload):
                if n == 1 and w == _LENGTH_DELIMITED:  # packed (the default in proto3)
                    floats.extend(np.frombuffer(v, dtype="<f4").tolist())
                elif n == 1 and w == _FIXED32:  # unpacked
                    floats.append(struct.unpack("<f", v)[0])
            feature = Feature("float", floats)
        else:
            ints: list[int] = []
            for n, w, v in _fields(payload):
                if n == 1 and w == _LENGTH_DELIMITED:
                    ints.extend(_decode_packed_varints(v))
                elif n == 1 and w == _VARINT:
                    ints.append(_signed64(v))
            feature = Feature("int64", ints)
    return feature


def _decode_map(buf: memoryview, decode_value) -> dict:
    """Decode a protobuf map (repeated entry messages with key=1, value=2) at field 1."""
    result = {}
    for number, wire_type, entry in _fields(buf):
        if number != 1 or wire_type != _LENGTH_DELIMITED:
            continue
        key, value = "", memoryview(b"")
        for n, w, v in _fields(entry):
            if n == 1 and w == _LENGTH_DELIMITED:
                key = bytes(v).decode("utf-8")
            elif n == 2 and w == _LENGTH_DELIMITED:
                value = v
        result[key] = decode_value(value)
    return result


def _decode_feature_list(buf: memoryview) -> list[Feature]:
    return [decode_feature(v) for n, w, v in _fields(buf) if n == 1 and w == _LENGTH_DELIMITED]


def decode_sequence_example(data: bytes | memoryview) -> tuple[dict[str, Feature],
                                                               dict[str, list[Feature]]]:
    """Decode a serialized ``tf.train.SequenceExample``.

    Returns:
        ``(context, feature_lists)``: context features by name, and per-step features by name.
    """
    context: dict[str, Feature] = {}
    feature_lists: dict[str, list[Feature]] = {}
    for number, wire_type, payload in _fields(memoryview(data)):
        if wire_type != _LENGTH_DELIMITED:
            continue
        if number == 1:  # Features context; repeated occurrences merge, as in protobuf
            context.update(_decode_map(payload, decode_feature))
        elif number == 2:  # FeatureLists feature_lists
            feature_lists.update(_decode_map(payload, _decode_feature_list))
    return context, feature_lists


def decode_example(data: bytes | memoryview) -> dict[str, Feature]:
    """Decode a serialized ``tf.train.Example``: ``Example{features(1): Features{feature(1):
    map<string, Feature>}}``.

    Returns:
        The features by name (repeated ``features`` fields merge, as in protobuf).
    """
    features: dict[str, Feature] = {}
    for number, wire_type, payload in _fields(memoryview(data)):
        if number == 1 and wire_type == _LENGTH_DELIMITED:
            features.update(_decode_map(payload, decode_feature))
    return features


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def encode_feature(feature: Feature) -> bytes:
    """Encode a ``tf.train.Feature`` (repeated scalars packed, as TensorFlow writes them)."""
    if feature.kind == "bytes":
        body = b"".join(_length_delimited(1, bytes(v)) for v in feature.values)
        return _length_delimited(1, body)
    if feature.kind == "float":
        packed = np.asarray(feature.values, dtype="<f4").tobytes()
        return _length_delimited(2, _length_delimited(1, packed) if packed else b"")
    if feature.kind == "int64":
        packed = b"".join(_varint(int(v)) for v in feature.values)
        return _length_delimited(3, _length_delimited(1, packed) if packed else b"")
    if feature.kind is None:
        return b""
    raise ValueError(f"unknown feature kind {feature.kind!r}")


def _encode_map_entry(key: str, value: bytes) -> bytes:
    return _length_delimited(1, _length_delimited(1, key.encode("utf-8")) +
                             _length_delimited(2, value))


def encode_sequence_example(context: dict[str, Feature],
                            feature_lists: dict[str, list[Feature]]) -> bytes:
    """Serialize a ``tf.train.SequenceExample`` (map entries in the given order)."""
    context_body = b"".join(_encode_map_entry(k, encode_feature(f)) for k, f in context.items())
    lists_body = b"".join(
        _encode_map_entry(k, b"".join(_length_delimited(1, encode_feature(f)) for f in features))
        for k, features in feature_lists.items())
    return _length_delimited(1, context_body) + _length_delimited(2, lists_body)


def encode_example(features: dict[str, Feature]) -> bytes:
    """Serialize a ``tf.train.Example`` (map entries in the given order)."""
    body = b"".join(_encode_map_entry(k, encode_feature(f)) for k, f in features.items())
    return _length_delimited(1, body)


# ============================================================================ trajectories
def trajectory_to_example(traj: Trajectory, index: int) -> bytes:
    """Serialize a (validated) trajectory as a DeepMind-layout SequenceExample."""
    key = int(traj.key) if traj.key is not None and traj.key.isdigit() else index
    context = {
        "key": Feature("int64", [key]),
        "particle_type": Feature("bytes", [traj.particle_type.astype("<i8").tobytes()]),
    }
    if traj.context is not None:
        context["context"] = Feature("bytes", [traj.context.astype("<f4").tobytes()])
    feature_lists = {"position": [Feature("bytes", [frame.astype("<f4").tobytes()])
                                  for frame in traj.position]}
    if traj.step_context is not None:
        feature_lists["step_context"] = [Feature("bytes", [row.astype("<f4").tobytes()])
                                         for row in traj.step_context]
    return encode_sequence_example(context, feature_lists)


def _feature_array(feature: Feature, dtype: str, file: Path, key: str) -> np.ndarray:
    """A feature's values as one flat array (bytes features hold raw little-endian arrays)."""
    if feature.kind == "bytes":
        itemsize = np.dtype(dtype).itemsize
        if any(len(v) % itemsize for v in feature.values):
            raise GnsInputError(f"byte length is not a multiple of {itemsize}", file=file, key=key,
                                expected=np.dtype(dtype).name)
        return np.frombuffer(b"".join(feature.values), dtype=dtype)
    if feature.kind in ("float", "int64"):
        return np.asarray(feature.values, dtype=dtype)
    return np.zeros(0, dtype=dtype)


def _per_step_array(features: list[Feature], dtype: str, file: Path, key: str) -> np.ndarray:
    """Stack one feature per frame into ``(T, K)``."""
    rows = [_feature_array(f, dtype, file, key) for f in features]
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        raise GnsInputError("frames have different numbers of values", file=file, key=key,
                            expected="the same size every frame", found=sorted(sizes))
    return np.stack(rows)


def example_to_trajectory(data: bytes, dim: int, *, file: Path, index: int) -> Trajectory:
    """Decode one record into a validated ``Trajectory``.

    Args:
        data: the serialized SequenceExample.
        dim: spatial dimension D (the format stores flat ``N * D`` floats per frame).
        file, index: for error messages.
    """
    name = f"record {index}"
    try:
        context, feature_lists = decode_sequence_example(data)
    except (WireFormatError, UnicodeDecodeError) as exc:
        raise GnsInputError(f"not a valid SequenceExample: {exc}", file=file, key=name) from None
    for where, table, feature_key in (("feature list", feature_lists, "position"),
                                      ("context feature", context, "particle_type")):
        if feature_key not in table:
            raise GnsInputError(f"record lacks the {where} '{feature_key}'", file=file,
                                key=f"{name}/{feature_key}", found=sorted(table))
    if not feature_lists["position"]:
        raise GnsInputError("trajectory has no frames", file=file, key=f"{name}/position")
    flat = _per_step_array(feature_lists["position"], "<f4", file, f"{name}/position")
    if flat.shape[1] % dim:
        raise GnsInputError(f"values per frame are not a multiple of dim={dim}", file=file,
                            key=f"{name}/position", expected=f"N * {dim}", found=flat.shape[1])
    key_values = context["key"].values if "key" in context else []
    traj = Trajectory(
        position=flat.reshape(flat.shape[0], -1, dim),  # (T, N, D)
        particle_type=_feature_array(context["particle_type"], "<i8", file,
                                     f"{name}/particle_type"),
        context=(_feature_array(context["context"], "<f4", file, f"{name}/context")
                 if "context" in context else None),
        step_context=(_per_step_array(feature_lists["step_context"], "<f4", file,
                                      f"{name}/step_context")
                      if feature_lists.get("step_context") else None),
        key=f"{int(key_values[0]):05d}" if key_values else f"{index:05d}",
    )
    return validate_trajectory(traj, dim=dim, file=file, name=name)


def read_tfrecord_file(path: str | os.PathLike, dim: int,
                       verify_crc: bool = True) -> Iterator[Trajectory]:
    """Yield the trajectories of one ``.tfrecord`` split file, one at a time."""
    path = Path(path)
    for index, record in enumerate(iter_records(path, verify_crc=verify_crc)):
        yield example_to_trajectory(record, dim, file=path, index=index)


class TfRecordSplit:
    """A re-iterable, streaming view of one TFRecord split file (records are read in order)."""

    def __init__(self, path: str | os.PathLike, dim: int, verify_crc: bool = True) -> None:
        self.path = Path(path)
        self.dim = dim
        self.verify_crc = verify_crc

    def __iter__(self) -> Iterator[Trajectory]:
        return read_tfrecord_file(self.path, self.dim, self.verify_crc)

    def __len__(self) -> int:
        return count_records(self.path)

    def __repr__(self) -> str:
        return f"TfRecordSplit('{self.path}')"


def read_tfrecord_dataset(dataset_dir: str | os.PathLike, splits: Iterable[str] | None = None,
                          verify_crc: bool = True) -> dict[str, TfRecordSplit]:
    """Open the TFRecord splits of a DeepMind-layout dataset.

    Args:
        dataset_dir: directory with ``metadata.json`` and ``<split>.tfrecord`` files.
        splits: which splits to open (default: every ``.tfrecord`` file present).
        verify_crc: check record CRCs (pure Python/numpy CRC-32C; turn off for speed).

    Returns:
        ``{split: TfRecordSplit}``; iterate a split to stream its ``Trajectory`` objects.
    """
    directory = Path(dataset_dir)
    meta = load_metadata(directory)
    present = available_splits(directory, TFRECORD_SUFFIX)
    wanted = list(splits) if splits is not None else present
    missing = [s for s in wanted if s not in present] or ([] if wanted else ["train"])
    if missing:
        found = ", ".join(f"{s}{TFRECORD_SUFFIX}" for s in present) or "no .tfrecord files"
        raise GnsInputError(f"dataset has no {missing[0]} split: found {found}",
                            file=directory / f"{missing[0]}{TFRECORD_SUFFIX}")
    return {s: TfRecordSplit(directory / f"{s}{TFRECORD_SUFFIX}", meta.dim, verify_crc)
            for s in wanted}


def write_tfrecord_file(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> Path:
    """Write trajectories as one ``.tfrecord`` file (validated; temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("xb") as fp:
        dim = None
        for index, traj in enumerate(trajectories):
            traj = validate_trajectory(traj, dim=dim, file=path, name=traj.key or f"{index:05d}")
            dim = traj.position.shape[2]
            _write_record(fp, trajectory_to_example(traj, index))
    return path


def write_tfrecord_dataset(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike,
                           splits: Iterable[str] | None = None) -> Path:
    """Export a canonical (HDF5) dataset to the DeepMind TFRecord layout.

    Args:
        dataset_dir: canonical dataset (``metadata.json`` and ``<split>.h5``).
        out_dir: where ``<split>.tfrecord`` and ``metadata.json`` are written.
        splits: which splits (default: every split present, ``train, valid, test`` first).

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    meta = load_metadata(dataset_dir)
    for split in splits if splits is not None else available_splits(dataset_dir):
        with open_split(dataset_dir, split, meta) as source:
            write_tfrecord_file(out / f"{split}{TFRECORD_SUFFIX}", source)
    save_metadata(meta, out)
    return out


__all__ = [
    "Feature", "TfRecordSplit", "WireFormatError", "count_records", "crc32c",
    "decode_example", "decode_feature", "decode_sequence_example", "encode_example",
    "encode_feature", "encode_sequence_example", "example_to_trajectory", "iter_records",
    "masked_crc32c", "read_record_at", "read_tfrecord_dataset", "read_tfrecord_file",
    "record_offsets", "trajectory_to_example", "write_tfrecord_dataset", "write_tfrecord_file",
]

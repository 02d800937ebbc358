"""DeepMind TFRecord layout: CRC-32C, framing, the protobuf wire format, and round trips."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from gns.data import (Trajectory, load_metadata, open_split, read_tfrecord_dataset,
                      write_split, write_tfrecord_dataset)
from gns.data.convert import convert_dataset
from gns.data.tfrecord import (Feature, crc32c, decode_feature, decode_sequence_example,
                               encode_feature, example_to_trajectory, iter_records,
                               masked_crc32c, trajectory_to_example, write_tfrecord_file)
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def bitwise_crc32c(data: bytes) -> int:
    """Reference CRC-32C, one bit at a time (no table), to check the fast versions."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


# ------------------------------------------------------------------------ CRC
@pytest.mark.parametrize("data, expected", [
    (b"123456789", 0xE3069283),  # the standard check value
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),  # RFC 3720, appendix B.4
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_crc32c_known_vectors(data, expected):
    assert crc32c(data) == expected


def test_masked_crc():
    assert masked_crc32c(b"") == 0xA282EAD8  # crc 0: only the constant is added
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF)
                                           + 0xA282EAD8) % 2**32


@pytest.mark.parametrize("size", [32768, 40001, 65536 + 777])
def test_vectorized_crc_matches_bitwise(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc32c(data) == bitwise_crc32c(data)


# ------------------------------------------------------------------------ protobuf by hand
def _ld(tag: int, payload: bytes) -> bytes:
    """One length-delimited field, written out by hand (short payloads only)."""
    assert len(payload) < 128
    return bytes([tag, len(payload)]) + payload


POSITIONS = np.array([[[0.1, 0.2], [0.3, 0.4]],
                      [[0.11, 0.21], [0.3, 0.4]],
                      [[0.12, 0.22], [0.3, 0.4]]], dtype=np.float32)  # (T=3, N=2, D=2)
TYPES = np.array([5, 3], dtype=np.int64)


def hand_assembled_example() -> bytes:
    """tf.train.SequenceExample, field by field, following example.proto / feature.proto."""
    key_feature = _ld(0x1A, _ld(0x0A, b"\x07"))  # Feature.int64_list(3) { value(1) packed: 7 }
    type_feature = _ld(0x0A, _ld(0x0A, TYPES.astype("<i8").tobytes()))  # Feature.bytes_list(1)
    context = (_ld(0x0A, _ld(0x0A, b"key") + _ld(0x12, key_feature))  # map entry: key=1, value=2
               + _ld(0x0A, _ld(0x0A, b"particle_type") + _ld(0x12, type_feature)))
    frames = b"".join(_ld(0x0A, _ld(0x0A, _ld(0x0A, frame.astype("<f4").tobytes())))
                      for frame in POSITIONS)  # FeatureList.feature(1) = Feature{bytes_list}
    feature_lists = _ld(0x0A, _ld(0x0A, b"position") + _ld(0x12, frames))
    return _ld(0x0A, context) + bytes([0x12]) + bytes([len(feature_lists)]) + feature_lists


def test_reader_decodes_hand_assembled_record(tmp_path):
    data = hand_assembled_example()
    # Framing by hand: length, masked CRC of the length, data, masked CRC of the data.
    length = struct.pack("<Q", len(data))
    framed = (length + struct.pack("<I", masked_crc32c(length)) + data
              + struct.pack("<I", masked_crc32c(data)))
    (tmp_path / "train.tfrecord").write_bytes(framed * 2)
    assert list(iter_records(tmp_path / "train.tfrecord")) == [data, data]

    traj = example_to_trajectory(data, 2, file=tmp_path, index=0)
    np.testing.assert_array_equal(traj.position, POSITIONS)
    np.testing.assert_array_equal(traj.particle_type, TYPES)
    assert traj.key == "00007" and traj.context is None and traj.step_context is None


def test_writer_emits_the_published_layout():
    traj = Trajectory(POSITIONS, TYPES, key="00007")
    assert trajectory_to_example(traj, index=0) == hand_assembled_example()


def test_unpacked_and_negative_scalars():
    unpacked_ints = _ld(0x1A, b"\x08\x05" + b"\x08" + b"\xff" * 9 + b"\x01")  # 5, then -1
    assert decode_feature(memoryview(unpacked_ints)) == Feature("int64", [5, -1])
    assert encode_feature(Feature("int64", [5, -1])) == _ld(0x1A, _ld(0x0A, b"\x05" + b"\xff" * 9
                                                                        + b"\x01"))
    unpacked_floats = _ld(0x12, b"\x0d" + struct.pack("<f", 1.5) + b"\x0d"
                          + struct.pack("<f", -2.0))
    assert decode_feature(memoryview(unpacked_floats)) == Feature("float", [1.5, -2.0])
    packed = encode_feature(Feature("float", [1.5, -2.0]))
    assert decode_feature(memoryview(packed)) == Feature("float", [1.5, -2.0])
    # Unknown fields are skipped, as protobuf parsers do.
    with_unknown = b"\x28\x01" + hand_assembled_example() + b"\x1a\x02hi"
    context, lists = decode_sequence_example(with_unknown)
    assert sorted(context) == ["key", "particle_type"] and len(lists["position"]) == 3


# ------------------------------------------------------------------------ files
def test_deepmind_fixture():
    splits = read_tfrecord_dataset(FIXTURES / "deepmind_tiny")
    assert {name: len(split) for name, split in splits.items()} == {"train": 2, "valid": 1,
                                                                     "test": 1}
    trajectories = list(splits["train"])
    assert [t.key for t in trajectories] == ["00000", "00001"]
    for traj in trajectories:
        assert traj.position.shape == (12, 7, 2) and traj.position.dtype == np.float32
        np.testing.assert_array_equal(traj.particle_type, [5, 5, 5, 5, 5, 3, 3])
        np.testing.assert_array_equal(traj.position[:, 5:], traj.position[:1, 5:].repeat(12, 0))
    raw = json.loads((FIXTURES / "deepmind_tiny" / "metadata.json").read_text())
    assert sorted(raw) == sorted(["bounds", "sequence_length", "default_connectivity_radius",
                                  "dim", "dt", "vel_mean", "vel_std", "acc_mean", "acc_std"])
    assert load_metadata(FIXTURES / "deepmind_tiny").sequence_length == 11


def test_corruption_is_detected(tmp_path):
    data = bytearray((FIXTURES / "deepmind_tiny" / "valid.tfrecord").read_bytes())
    data[40] ^= 0x01
    path = tmp_path / "valid.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(GnsInputError, match=r"valid\.tfrecord', key 'record 0'.*CRC mismatch"):
        list(iter_records(path))
    assert len(list(iter_records(path, verify_crc=False))) == 1
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(GnsInputError, match="truncated record"):
        list(iter_records(path, verify_crc=False))


def test_missing_split_and_wrong_dim(tmp_path):
    with pytest.raises(GnsInputError, match=r"no test split: found train\.tfrecord"):
        (tmp_path / "train.tfrecord").write_bytes(b"")
        (tmp_path / "metadata.json").write_text(
            (FIXTURES / "deepmind_tiny" / "metadata.json").read_text())
        read_tfrecord_dataset(tmp_path, splits=["test"])
    traj = Trajectory(np.zeros((4, 3, 3), np.float32), np.zeros(3, np.int64))
    write_tfrecord_file(tmp_path / "train.tfrecord", [traj])
    # 9 values per frame read with dim=2 is not a whole number of particles.
    with pytest.raises(GnsInputError, match=r"record 0/position.*multiple of dim=2"):
        list(read_tfrecord_dataset(tmp_path)["train"])


def test_round_trip_h5_tfrecord_h5_is_exact(tmp_path):
    rng = np.random.default_rng(11)
    trajectories = [Trajectory(rng.normal(size=(9 + i, 4 + i, 3)).astype(np.float32),
                               rng.integers(0, 9, size=4 + i),
                               context=rng.normal(size=2).astype(np.float32),
                               step_context=rng.normal(size=(9 + i, 2)).astype(np.float32))
                    for i in range(3)]
    source = tmp_path / "h5"
    write_split(source / "train.h5", trajectories)
    write_split(source / "test.h5", trajectories[1:])
    meta_text = json.dumps({"dim": 3, "dt": 0.1, "bounds": [[-5, 5]] * 3,
                            "default_connectivity_radius": 0.5, "context_size": 2,
                            "step_context_size": 2, "note": "kept"})
    (source / "metadata.json").write_text(meta_text)

    write_tfrecord_dataset(source, tmp_path / "tf")
    assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == [
        "metadata.json", "test.tfrecord", "train.tfrecord"]
    convert_dataset(tmp_path / "tf", tmp_path / "back", progress=False)
    for split, expected in (("train", trajectories), ("test", trajectories[1:])):
        back = open_split(tmp_path / "back", split)
        assert len(back) == len(expected)
        for got, want in zip(back, expected):
            np.testing.assert_array_equal(got.position, want.position)
            np.testing.assert_array_equal(got.particle_type, want.particle_type)
            np.testing.assert_array_equal(got.context, want.context)
            np.testing.assert_array_equal(got.step_context, want.step_context)
    meta = load_metadata(tmp_path / "back")
    assert meta.extra == {"note": "kept"} and meta.context_size == 2

"""DeepMind meshgraphnets TFRecords: the tf.train.Example bytes checked by hand, the committed
fixtures, conversion to and from the canonical mesh format, remeshed (varlen) records, errors."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from gns.data.convert import convert_dataset, detect_format, inspect_dataset
from gns.data.mesh import MeshTrajectory, load_mesh_metadata, open_mesh_split
from gns.data.meshgraphnets import (convert_meshgraphnets, decode_meshgraphnets_record,
                                    encode_meshgraphnets_record, export_meshgraphnets,
                                    load_meshgraphnets_meta, parse_meshgraphnets_features,
                                    read_meshgraphnets_split, save_meshgraphnets_meta,
                                    write_meshgraphnets_split)
from gns.data.tfrecord import Feature, decode_example, encode_example
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLOTH = FIXTURES / "meshgraphnets_tiny"
FLOW = FIXTURES / "meshgraphnets_flow_tiny"


# ------------------------------------------------------------------------ protobuf by hand
def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def ld(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def ld_fields(buf: bytes) -> list[tuple[int, bytes]]:
    """``(field number, payload)`` of a message made only of length-delimited fields."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        assert tag & 7 == 2, "every field of these messages is length-delimited"
        size, pos = read_varint(buf, pos)
        out.append((tag >> 3, buf[pos:pos + size]))
        pos += size
    return out


def example_by_hand(features: dict[str, bytes]) -> bytes:
    """tf.train.Example{features(1): Features{feature(1): map entry{key(1), value(2): Feature{
    bytes_list(1): BytesList{value(1)}}}}}, following example.proto and feature.proto."""
    entries = b"".join(ld(1, ld(1, name.encode()) + ld(2, ld(1, ld(1, raw))))
                       for name, raw in features.items())
    return ld(1, entries)


def parse_example_by_hand(data: bytes) -> dict[str, bytes]:
    [(number, features)] = ld_fields(data)
    assert number == 1  # Example.features
    out = {}
    for number, entry in ld_fields(features):
        assert number == 1  # Features.feature, a map: repeated entries
        parts = dict(ld_fields(entry))
        [(kind, bytes_list)] = ld_fields(parts[2])
        assert kind == 1  # Feature.bytes_list (float_list is 2, int64_list 3)
        values = ld_fields(bytes_list)
        assert all(n == 1 for n, _ in values)  # BytesList.value
        out[parts[1].decode()] = b"".join(v for _, v in values)
    return out


def bitwise_masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def first_record_by_hand(path: Path) -> bytes:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert struct.unpack("<I", raw[8:12])[0] == bitwise_masked_crc32c(raw[:8])
    data = raw[12:12 + length]
    assert struct.unpack("<I", raw[12 + length:16 + length])[0] == bitwise_masked_crc32c(data)
    return data


# ------------------------------------------------------------------------ small trajectories
TINY_META = {
    "simulator": "test", "dt": 0.5, "trajectory_length": 2,
    "features": {
        "cells": {"type": "static", "shape": [1, -1, 3], "dtype": "int32"},
        "mesh_pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
        "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
        "world_pos": {"type": "dynamic", "shape": [2, -1, 3], "dtype": "float32"},
    },
    "field_names": ["cells", "mesh_pos", "node_type", "world_pos"],
}
MESH_POS = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
CELLS = np.array([[0, 1, 2]], dtype=np.int32)
NODE_TYPE = np.array([0, 0, 3], dtype=np.int32)
WORLD_POS = np.arange(18, dtype=np.float32).reshape(2, 3, 3) / 7


def tiny() -> MeshTrajectory:
    return MeshTrajectory(MESH_POS, CELLS, NODE_TYPE, {"world_pos": WORLD_POS})


def remeshed_meta(frames: int = 3) -> dict:
    """A dynamic_sizing-like meta.json: every array varies in length over time."""
    features = {
        "cells": {"type": "dynamic_varlen", "shape": [-1, 3], "dtype": "int32"},
        "mesh_pos": {"type": "dynamic_varlen", "shape": [-1, 2], "dtype": "float32"},
        "node_type": {"type": "dynamic_varlen", "shape": [-1, 1], "dtype": "int32"},
        "world_pos": {"type": "dynamic_varlen", "shape": [-1, 3], "dtype": "float32"},
    }
    names = [n for name in features for n in (name, f"length_{name}")]
    return {"simulator": "arcsim", "dt": 0.02, "trajectory_length": frames, "features": features,
            "field_names": names}


def remeshed(frames: int = 3) -> MeshTrajectory:
    """Frame t has 3 + t nodes in a fan of 1 + t triangles around node 0."""
    nodes = np.arange(3, 3 + frames)
    mesh_pos = np.concatenate([np.c_[np.arange(n), np.arange(n) ** 2] for n in nodes])
    cells = np.concatenate([[[0, k, k + 1] for k in range(1, n - 1)] for n in nodes])
    world_pos = np.c_[mesh_pos, np.repeat(np.arange(frames), nodes)]
    return MeshTrajectory(
        mesh_pos=mesh_pos.astype(np.float32), cells=cells,
        node_type=np.zeros(nodes.sum(), dtype=np.int64),
        fields={"world_pos": world_pos.astype(np.float32)},
        row_lengths={"cells": nodes - 2, "mesh_pos": nodes, "node_type": nodes,
                     "world_pos": nodes})


# ------------------------------------------------------------------------ the published layout
def test_writer_emits_the_published_example_layout(assert_same_mesh):
    expected = example_by_hand({
        "cells": CELLS.astype("<i4").tobytes(),
        "mesh_pos": MESH_POS.astype("<f4").tobytes(),
        "node_type": NODE_TYPE.astype("<i4").tobytes(),  # [1, N, 1]: one int32 per node
        "world_pos": WORLD_POS.astype("<f4").tobytes(),  # [T, N, 3], time-major
    })
    features = parse_meshgraphnets_features(TINY_META)
    assert encode_meshgraphnets_record(tiny(), features, TINY_META["field_names"]) == expected
    decoded = decode_meshgraphnets_record(expected, features, index=4)
    assert_same_mesh(decoded, tiny())
    assert decoded.key == "00004" and decoded.node_type.dtype == np.int64


def test_example_codec():
    features = {"a": Feature("bytes", [b"\x01\x02", b"\x03"]), "b": Feature("int64", [7, -1]),
                "c": Feature("float", [0.5])}
    data = encode_example(features)
    assert decode_example(data) == features
    # Unknown fields are skipped; a repeated Example.features merges, as protobuf does.
    extra = b"\x10\x05" + ld(1, ld(1, ld(1, b"d") + ld(2, ld(1, ld(1, b"x")))))
    assert sorted(decode_example(data + extra)) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("root, dynamic", [(CLOTH, {"world_pos": 3}),
                                           (FLOW, {"velocity": 2, "pressure": 1})])
def test_fixture_meta_follows_the_published_layout(root, dynamic):
    meta = json.loads((root / "meta.json").read_text())
    assert meta["trajectory_length"] == 5 and meta["dt"] > 0
    assert meta["field_names"] == ["cells", "mesh_pos", "node_type", *dynamic]
    assert meta["features"]["cells"] == {"type": "static", "shape": [1, -1, 3], "dtype": "int32"}
    assert meta["features"]["mesh_pos"] == {"type": "static", "shape": [1, -1, 2],
                                            "dtype": "float32"}
    assert meta["features"]["node_type"] == {"type": "static", "shape": [1, -1, 1],
                                             "dtype": "int32"}
    for name, width in dynamic.items():
        assert meta["features"][name] == {"type": "dynamic", "shape": [5, -1, width],
                                          "dtype": "float32"}


@pytest.mark.parametrize("root", [CLOTH, FLOW])
def test_fixture_bytes_decoded_by_hand_match_the_reader(root):
    meta = json.loads((root / "meta.json").read_text())
    raw = parse_example_by_hand(first_record_by_hand(root / "train.tfrecord"))
    assert sorted(raw) == sorted(meta["field_names"])
    by_hand = {}
    for name, spec in meta["features"].items():
        by_hand[name] = np.frombuffer(raw[name], dtype="<" + spec["dtype"][0] + "4").reshape(
            spec["shape"])
    traj = read_meshgraphnets_split(root, "train")[0]
    np.testing.assert_array_equal(traj.mesh_pos, by_hand["mesh_pos"][0])
    np.testing.assert_array_equal(traj.cells, by_hand["cells"][0])
    np.testing.assert_array_equal(traj.node_type, by_hand["node_type"][0, :, 0])
    for name in meta["field_names"][3:]:
        np.testing.assert_array_equal(traj.fields[name], by_hand[name])
    assert traj.mesh_pos.shape == (12, 2) and traj.cells.shape == (12, 3)
    assert traj.cells.min() == 0 and traj.cells.max() == 11


def test_cloth_fixture_content(assert_same_mesh):
    split = read_meshgraphnets_split(CLOTH, "train")
    assert len(split) == 2 and repr(split).startswith("MeshgraphnetsSplit(")
    trajectories = list(split)
    assert [t.key for t in trajectories] == ["00000", "00001"]
    for index, traj in enumerate(trajectories):
        assert_same_mesh(split[index], traj)
        assert traj.fields["world_pos"].shape == (5, 12, 3)
        handles = traj.node_type == 3
        assert handles.sum() == 2 and set(traj.node_type.tolist()) == {0, 3}
        world_pos = traj.fields["world_pos"]
        np.testing.assert_array_equal(world_pos[:, handles], world_pos[:1, handles].repeat(5, 0))
        assert (np.diff(world_pos[:, ~handles, 2], axis=0) < 0).all()  # free nodes fall
    assert_same_mesh(split[-1], trajectories[1])
    with pytest.raises(IndexError, match="record 2 out of range for 2 records"):
        split[2]
    assert_same_mesh(pickle.loads(pickle.dumps(split))[0], trajectories[0])
    assert {s: len(read_meshgraphnets_split(CLOTH, s)) for s in ("valid", "test")} == {
        "valid": 1, "test": 1}


# ------------------------------------------------------------------------ conversion
def test_convert_cloth_fixture_to_canonical(tmp_path, assert_same_mesh):
    out = convert_meshgraphnets(CLOTH, tmp_path)
    assert out == tmp_path
    meta = load_mesh_metadata(tmp_path)
    assert (meta.domain, meta.dt, meta.sequence_length, meta.mesh_dim, meta.cell_type) == (
        "cloth", 0.02, 4, 2, "triangle")
    assert meta.node_types == {"NORMAL": 0, "HANDLE": 3}
    assert meta.target.field == "world_pos" and meta.target.order == 2 and meta.outputs == []
    assert meta.generator["simulator"] == "synthetic" and meta.world_edge_radius is None
    for split in ("train", "valid", "test"):
        with open_mesh_split(tmp_path, split) as converted:
            for got, want in zip(converted, read_meshgraphnets_split(CLOTH, split), strict=True):
                assert_same_mesh(got, want)


def test_convert_flow_fixture_through_convert_dataset(tmp_path):
    assert detect_format(FLOW) == "meshgraphnets"
    convert_dataset(FLOW, tmp_path, progress=False)
    assert detect_format(tmp_path) == "mesh"
    meta = load_mesh_metadata(tmp_path)
    assert meta.domain == "flow" and meta.target.field == "velocity" and meta.target.order == 1
    assert meta.outputs == ["pressure"] and list(meta.fields) == ["velocity", "pressure"]
    assert meta.node_types == {"NORMAL": 0, "INFLOW": 4, "OUTFLOW": 5, "WALL_BOUNDARY": 6}
    with open_mesh_split(tmp_path, "train") as split:
        window = split.read_window(1, 2, 4)
        want = read_meshgraphnets_split(FLOW, "train")[1]
        np.testing.assert_array_equal(window.fields["pressure"], want.fields["pressure"][2:4])


def test_inspect_mesh_datasets(tmp_path):
    summary = inspect_dataset(CLOTH)
    assert summary["format"] == "meshgraphnets" and summary["kind"] == "mesh"
    assert summary["splits"]["train"] == {
        "num_trajectories": 2, "num_frames": [5, 5], "num_nodes": [12, 12],
        "num_cells": [12, 12], "node_type_counts": {0: 20, 3: 4}}
    convert_dataset(CLOTH, tmp_path, progress=False)
    canonical = inspect_dataset(tmp_path)
    assert canonical["format"] == "mesh"
    assert canonical["splits"] == summary["splits"] and canonical["fields"] == summary["fields"]
    json.dumps(canonical)


def test_cli_inspect_and_convert(tmp_path, capsys):
    from gns.cli import main

    assert main(["inspect", str(FLOW)]) == 0
    assert json.loads(capsys.readouterr().out)["domain"] == "flow"
    assert main(["convert", str(CLOTH), str(tmp_path / "h5"), "--to", "h5"]) == 0
    assert main(["convert", str(tmp_path / "h5"), str(tmp_path / "tf"), "--to", "tfrecord"]) == 0
    for split in ("train", "test"):
        assert (tmp_path / "tf" / f"{split}.tfrecord").read_bytes() == (
            CLOTH / f"{split}.tfrecord").read_bytes()


def test_canonical_to_meshgraphnets_and_back_is_exact(tmp_path, assert_same_mesh):
    static_meta = json.loads(json.dumps(TINY_META))
    static_meta["features"]["thickness"] = {"type": "static", "shape": [1, -1, 1],
                                            "dtype": "float32"}
    static_meta["field_names"].append("thickness")
    trajectories = [tiny(), tiny()]
    for i, traj in enumerate(trajectories):
        traj.static_fields["thickness"] = np.full((3, 1), i + 0.5, np.float32)
    write_meshgraphnets_split(tmp_path / "src" / "train.tfrecord", trajectories, static_meta)
    save_meshgraphnets_meta(static_meta, tmp_path / "src")
    convert_meshgraphnets(tmp_path / "src", tmp_path / "h5")
    assert not load_mesh_metadata(tmp_path / "h5").fields["thickness"].dynamic
    export_meshgraphnets(tmp_path / "h5", tmp_path / "back")
    again = load_meshgraphnets_meta(tmp_path / "back")
    assert again["features"]["thickness"]["type"] == "static"
    assert again["trajectory_length"] == 2 and again["dt"] == 0.5
    for got, want in zip(read_meshgraphnets_split(tmp_path / "back", "train"), trajectories,
                         strict=True):
        assert_same_mesh(got, want)


# ------------------------------------------------------------------------ remeshed (varlen)
def test_varlen_records_round_trip_flattened(tmp_path, assert_same_mesh):
    meta = remeshed_meta()
    write_meshgraphnets_split(tmp_path / "mgn" / "train.tfrecord", [remeshed()], meta)
    save_meshgraphnets_meta(meta, tmp_path / "mgn")
    raw = parse_example_by_hand(first_record_by_hand(tmp_path / "mgn" / "train.tfrecord"))
    assert list(raw) == meta["field_names"]
    np.testing.assert_array_equal(np.frombuffer(raw["length_world_pos"], "<i4"), [3, 4, 5])
    np.testing.assert_array_equal(np.frombuffer(raw["length_cells"], "<i4"), [1, 2, 3])

    traj = read_meshgraphnets_split(tmp_path / "mgn", "train")[0]
    assert_same_mesh(traj, remeshed())
    assert traj.is_varlen and traj.num_frames == 3 and traj.num_nodes == 5

    convert_meshgraphnets(tmp_path / "mgn", tmp_path / "h5")
    assert sorted(load_mesh_metadata(tmp_path / "h5").varlen) == [
        "cells", "mesh_pos", "node_type", "world_pos"]
    with h5py.File(tmp_path / "h5" / "train.h5") as f:
        np.testing.assert_array_equal(f["00000/world_pos_row_lengths"][()], [3, 4, 5])
        assert f["00000/world_pos"].shape == (12, 3)
    with open_mesh_split(tmp_path / "h5", "train") as split:
        assert_same_mesh(split[0], remeshed())
    summary = inspect_dataset(tmp_path / "h5")
    assert summary["varlen"] and summary["splits"]["train"]["num_nodes"] == [5, 5]
    assert summary["splits"]["train"]["node_type_counts"] == {0: 3}  # first frame
    export_meshgraphnets(tmp_path / "h5", tmp_path / "back")
    assert_same_mesh(read_meshgraphnets_split(tmp_path / "back", "train")[0], remeshed())


def test_dynamic_mesh_arrays_of_fixed_size_become_flattened():
    meta = json.loads(json.dumps(TINY_META))
    meta["features"]["mesh_pos"] = {"type": "dynamic", "shape": [2, -1, 2], "dtype": "float32"}
    features = parse_meshgraphnets_features(meta)
    data = example_by_hand({"cells": CELLS.tobytes(),
                            "mesh_pos": np.concatenate([MESH_POS, MESH_POS + 1]).tobytes(),
                            "node_type": NODE_TYPE.tobytes(), "world_pos": WORLD_POS.tobytes()})
    traj = decode_meshgraphnets_record(data, features)
    np.testing.assert_array_equal(traj.row_lengths["mesh_pos"], [3, 3])
    assert traj.mesh_pos.shape == (6, 2)
    assert encode_meshgraphnets_record(traj, features) == data


def test_legacy_dtype_spelling_is_accepted():
    meta = json.loads(json.dumps(TINY_META))
    meta["features"]["world_pos"]["dtype"] = "<dtype: 'float32'>"
    assert parse_meshgraphnets_features(meta)["world_pos"].dtype == np.dtype("<f4")


# ------------------------------------------------------------------------ errors
def test_wrong_varlen_width_names_the_length_feature(tmp_path):
    meta = remeshed_meta()
    write_meshgraphnets_split(tmp_path / "train.tfrecord", [remeshed()], meta)
    meta["features"]["world_pos"]["shape"] = [-1, 4]  # 36 values read as 9 rows of 4
    save_meshgraphnets_meta(meta, tmp_path)
    with pytest.raises(GnsInputError, match="record 0/length_world_pos.*check the feature's "
                                            "shape in meta.json"):
        read_meshgraphnets_split(tmp_path, "train")[0]


@pytest.mark.parametrize("change, key", [
    (lambda m: m.pop("features"), "features"),
    (lambda m: m["features"].pop("cells"), "features/cells"),
    (lambda m: m["features"]["world_pos"].update(type="ragged"), "features/world_pos/type"),
    (lambda m: m["features"]["world_pos"].update(shape=[-1, 3]), "features/world_pos/shape"),
    (lambda m: m["features"]["mesh_pos"].update(shape=[2, -1, 2]), "features/mesh_pos/shape"),
    (lambda m: m["features"]["world_pos"].update(dtype="string"), "features/world_pos/dtype"),
])
def test_bad_meta_json_names_the_key(tmp_path, change, key):
    shutil.copy(CLOTH / "train.tfrecord", tmp_path)
    meta = json.loads((CLOTH / "meta.json").read_text())
    change(meta)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(GnsInputError) as exc:
        read_meshgraphnets_split(tmp_path, "train")
    assert exc.value.key == key and str(tmp_path / "meta.json") in str(exc.value)


def test_bad_records_name_the_record_and_feature(tmp_path):
    features = parse_meshgraphnets_features(TINY_META)
    good = {"cells": CELLS.tobytes(), "mesh_pos": MESH_POS.tobytes(),
            "node_type": NODE_TYPE.tobytes(), "world_pos": WORLD_POS.tobytes()}
    cases = [
        ({k: v for k, v in good.items() if k != "world_pos"}, "record 3/world_pos",
         "lacks a feature"),
        ({**good, "world_pos": WORLD_POS.ravel()[:-3].tobytes()}, "record 3/world_pos",
         "do not fit the shape"),  # 15 values are no [2, -1, 3]
        ({**good, "world_pos": WORLD_POS.tobytes()[:-2]}, "record 3/world_pos", "multiple of 4"),
        ({**good, "cells": np.array([[0, 1, 3]], np.int32).tobytes()}, "record 3/cells",
         "does not exist"),
        ({**good, "node_type": np.array([0, 9, 0], np.int32).tobytes()}, "record 3/node_type",
         "not declared"),
        ({**good, "world_pos": np.full_like(WORLD_POS, np.nan).tobytes()}, "record 3/world_pos",
         "non-finite"),
    ]
    for features_bytes, key, message in cases:
        with pytest.raises(GnsInputError, match=message) as exc:
            decode_meshgraphnets_record(example_by_hand(features_bytes), features,
                                        file=tmp_path / "x.tfrecord", index=3)
        assert exc.value.key == key and "x.tfrecord" in str(exc.value)
    with pytest.raises(GnsInputError, match="record 3.*not a valid tf.train.Example"):
        decode_meshgraphnets_record(b"\x0a\x50", features, index=3)


def test_missing_files_list_what_is_there(tmp_path):
    with pytest.raises(GnsInputError, match=r"no meta\.json.*an empty directory"):
        read_meshgraphnets_split(tmp_path, "train")
    shutil.copy(CLOTH / "meta.json", tmp_path)
    shutil.copy(CLOTH / "valid.tfrecord", tmp_path)
    with pytest.raises(GnsInputError, match=r"no train split: found valid\.tfrecord"):
        read_meshgraphnets_split(tmp_path, "train")


def test_writer_refuses_arrays_meta_json_does_not_describe(tmp_path):
    path = tmp_path / "train.tfrecord"
    extra = tiny()
    extra.fields["velocity"] = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(GnsInputError, match="meta.json does not declare") as exc:
        write_meshgraphnets_split(path, [tiny(), extra], TINY_META)
    assert exc.value.key == "00001/velocity"
    longer = tiny()
    longer.fields["world_pos"] = np.zeros((3, 3, 3), np.float32)
    with pytest.raises(GnsInputError, match=r"does not fit the shape.*\[2, -1, 3\]"):
        write_meshgraphnets_split(path, [longer], TINY_META)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_fixture_copy_is_detected(tmp_path):
    data = bytearray((CLOTH / "valid.tfrecord").read_bytes())
    data[100] ^= 0x01
    shutil.copy(CLOTH / "meta.json", tmp_path)
    (tmp_path / "valid.tfrecord").write_bytes(bytes(data))
    split = read_meshgraphnets_split(tmp_path, "valid")
    with pytest.raises(GnsInputError, match=r"valid\.tfrecord', key 'record 0'.*CRC mismatch"):
        split[0]
    with pytest.raises(GnsInputError, match="CRC mismatch"):
        list(split)


def test_particle_tfrecords_keep_their_format(tmp_path):
    for name in ("metadata.json", "train.tfrecord"):
        shutil.copy(FIXTURES / "deepmind_tiny" / name, tmp_path)
    shutil.copy(CLOTH / "meta.json", tmp_path)  # a stray meta.json beside particle data
    assert detect_format(tmp_path) == "tfrecord"

"""Node types: DeepMind ids, one-hot, masks and the check against declared types."""

from __future__ import annotations

import pytest
import torch

from gns.errors import GnsInputError
from gns.mesh.types import NODE_TYPE_SIZE, NodeType, check_node_types, declared_type_ids, one_hot, type_mask


def test_deepmind_ids():
    assert [(t.name, int(t)) for t in NodeType] == [
        ("NORMAL", 0), ("OBSTACLE", 1), ("AIRFOIL", 2), ("HANDLE", 3), ("INFLOW", 4), ("OUTFLOW", 5),
        ("WALL_BOUNDARY", 6)]
    assert NODE_TYPE_SIZE == 9


def test_one_hot_shapes_and_layouts():
    ids = torch.tensor([0, 3, 6, 3])
    encoded = one_hot(ids)
    assert encoded.shape == (4, 9) and encoded.dtype == torch.float32
    assert torch.equal(encoded.argmax(dim=1), ids) and torch.equal(encoded.sum(dim=1), torch.ones(4))
    assert torch.equal(one_hot(ids[:, None].int()), encoded)               # DeepMind's (N, 1) int32 layout
    assert one_hot(ids, dtype=torch.float64).dtype == torch.float64


def test_one_hot_out_of_range():
    with pytest.raises(GnsInputError, match=r"node 1 has type 9.*ids in \[0, 9\)"):
        one_hot(torch.tensor([0, 9]))
    with pytest.raises(GnsInputError, match="integer"):
        one_hot(torch.tensor([0.0, 1.0]))


def test_type_mask():
    ids = torch.tensor([0, 1, 3, 5, 0])
    assert type_mask(ids, [NodeType.NORMAL, NodeType.OUTFLOW]).tolist() == [True, False, False, True, True]


def test_declared_type_ids_forms():
    assert declared_type_ids({"NORMAL": 0, "HANDLE": 3}) == {0, 3}
    assert declared_type_ids(["normal", NodeType.OBSTACLE, 4]) == {0, 1, 4}
    with pytest.raises(GnsInputError, match="HANDLE=3"):
        declared_type_ids({"HANDLE": 2})
    with pytest.raises(GnsInputError, match="unknown node type name 'HANDEL'"):
        declared_type_ids(["HANDEL"])


def test_check_node_types_accepts_declared():
    check_node_types(torch.tensor([0, 3, 0]), {"NORMAL": 0, "HANDLE": 3})


def test_check_node_types_names_undeclared_types():
    node_type = torch.tensor([0, 0, 1, 3, 1, 1])
    with pytest.raises(GnsInputError) as info:
        check_node_types(node_type, {"NORMAL": 0, "HANDLE": 3}, file="train.h5", key="00002/node_type")
    message = str(info.value)
    for part in ("file 'train.h5'", "key '00002/node_type'", "undeclared node type",
                 "OBSTACLE=1 on 3 node(s), first node 2", "HANDLE=3", "NORMAL=0"):
        assert part in message, (part, message)

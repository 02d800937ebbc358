"""Node types of mesh simulations (DeepMind ``meshgraphnets`` ids) and checks on them.

A node's type says how the simulator treats it: ``NORMAL`` nodes are predicted, ``HANDLE`` and
``OBSTACLE`` nodes follow a prescribed motion, ``INFLOW``/``OUTFLOW``/``WALL_BOUNDARY`` carry the
boundary conditions of a flow. The ids, and the one-hot width of 9 (two ids are unused), are the
ones of DeepMind's datasets, so converted records need no remapping.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from gns.errors import GnsInputError

__all__ = ["NodeType", "NODE_TYPE_SIZE", "one_hot", "type_mask", "declared_type_ids", "check_node_types"]


class NodeType(enum.IntEnum):
    """DeepMind ``common.NodeType`` ids."""

    NORMAL = 0
    OBSTACLE = 1
    AIRFOIL = 2
    HANDLE = 3
    INFLOW = 4
    OUTFLOW = 5
    WALL_BOUNDARY = 6


# Width of the one-hot encoding in DeepMind's models (``NodeType.SIZE``); ids 7 and 8 are unused
# but kept so that checkpoints and feature widths match theirs.
NODE_TYPE_SIZE = 9


def one_hot(node_type: Tensor, size: int = NODE_TYPE_SIZE, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot encoding of node types.

    Args:
        node_type: ``(N,)`` or ``(N, 1)`` integer ids in ``[0, size)``.
        size: width of the encoding.
        dtype: floating dtype of the result.

    Returns:
        ``(N, size)`` on ``node_type.device``.

    Raises:
        GnsInputError: ``node_type`` is not integer, or holds an id outside ``[0, size)``.
    """
    ids = _as_ids(node_type)
    if ids.numel():
        lo, hi = (int(v) for v in torch.aminmax(ids))
        if lo < 0 or hi >= size:
            bad = int(((ids < 0) | (ids >= size)).nonzero()[0, 0])
            raise GnsInputError(f"node {bad} has type {int(ids[bad])}, outside the one-hot range",
                                key="node_type", expected=f"ids in [0, {size})", found=f"ids in [{lo}, {hi}]")
    return torch.nn.functional.one_hot(ids, size).to(dtype)


def type_mask(node_type: Tensor, types: Iterable[int | NodeType]) -> Tensor:
    """``(N,)`` bool: whether each node's type is one of ``types`` (e.g. the nodes a loss covers)."""
    ids = _as_ids(node_type)
    wanted = torch.tensor([int(t) for t in types], dtype=ids.dtype, device=ids.device)
    return torch.isin(ids, wanted)


def declared_type_ids(declared: Mapping[str, int] | Iterable[int | str | NodeType]) -> frozenset[int]:
    """The set of ids a dataset declares.

    Args:
        declared: a metadata ``node_types`` mapping ``{"NORMAL": 0, ...}`` (its names must agree
            with :class:`NodeType`), or an iterable of ids, :class:`NodeType` members or names.

    Raises:
        GnsInputError: an unknown name, or a name mapped to another id than DeepMind's.
    """
    ids = set()
    if isinstance(declared, Mapping):
        for name, value in declared.items():
            known = _by_name(name)
            if int(value) != int(known):
                raise GnsInputError(f"node type {name} is declared with id {value}", key="node_types",
                                    expected=f"{name}={int(known)} (DeepMind ids)", found=f"{name}={value}")
            ids.add(int(value))
        return frozenset(ids)
    for item in declared:
        ids.add(int(_by_name(item)) if isinstance(item, str) else int(item))
    return frozenset(ids)


def check_node_types(node_type: Tensor, declared: Mapping[str, int] | Iterable[int | str | NodeType], *,
                     file: object = None, key: str | None = "node_type") -> None:
    """Raise if a node has a type the dataset did not declare.

    Args:
        node_type: ``(N,)`` or ``(N, 1)`` integer ids.
        declared: the declared types, as accepted by :func:`declared_type_ids`.
        file, key: where ``node_type`` came from, for the message.

    Raises:
        GnsInputError: naming every undeclared id, how many nodes have it and the first such node.
    """
    ids = _as_ids(node_type, file=file, key=key)
    allowed = declared_type_ids(declared)
    present, counts = torch.unique(ids, return_counts=True)
    extra = [(int(t), int(c)) for t, c in zip(present.tolist(), counts.tolist()) if int(t) not in allowed]
    if not extra:
        return
    parts = []
    for type_id, count in extra:
        first = int((ids == type_id).nonzero()[0, 0])
        parts.append(f"type {_type_name(type_id)} on {count} node(s), first node {first}")
    declared_names = sorted(_type_name(t) for t in allowed)
    raise GnsInputError("undeclared node type(s): " + "; ".join(parts), file=file, key=key,
                        expected=f"only declared types {declared_names}",
                        found=sorted(_type_name(t) for t, _ in extra))


def _as_ids(node_type: Tensor, *, file: object = None, key: str | None = "node_type") -> Tensor:
    """``(N,)`` int64 view of ``node_type`` (accepts the ``(N, 1)`` layout of DeepMind records)."""
    node_type = torch.as_tensor(node_type)
    if node_type.ndim == 2 and node_type.shape[1] == 1:
        node_type = node_type[:, 0]
    if node_type.ndim != 1:
        raise GnsInputError("node_type must hold one id per node", file=file, key=key,
                            expected="(N,) or (N, 1)", found=tuple(node_type.shape))
    if node_type.is_floating_point() or node_type.is_complex() or node_type.dtype == torch.bool:
        raise GnsInputError("node_type must be integer", file=file, key=key, expected="int", found=node_type.dtype)
    return node_type.long()


def _by_name(name: str | int | NodeType) -> NodeType:
    if isinstance(name, NodeType):
        return name
    try:
        return NodeType[str(name).upper()]
    except KeyError:
        raise GnsInputError(f"unknown node type name {name!r}", key="node_types",
                            expected=[t.name for t in NodeType], found=name) from None


def _type_name(type_id: int) -> str:
    try:
        return f"{NodeType(type_id).name}={type_id}"
    except ValueError:
        return str(type_id)

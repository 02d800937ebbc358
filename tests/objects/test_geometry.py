"""The shapes in torch against Chipmunk's (pymunk's) own geometry, and touching against the solver's contacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pymunk = pytest.importorskip("pymunk")

from gns.data.objects import BOX, DISC, TRIANGLE, open_object_split  # noqa: E402
from gns.objects.features import all_pairs  # noqa: E402
from gns.objects.geometry import body_vertices, contact_frame, place, separation, touching, wall_gaps  # noqa: E402
from gns.solvers.objects2d import _make_shape  # noqa: E402


def _chipmunk_shape(code: int, size: np.ndarray, position: np.ndarray, angle: float):
    body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    body.position, body.angle = (float(position[0]), float(position[1])), angle
    shape = _make_shape(pymunk, body, code, size)
    pymunk.Space().add(body, shape)
    return shape


def _chipmunk_separation(codes, sizes, positions, angles, world) -> float:
    """Signed distance of two shapes from Chipmunk: a point query for a disc, a collision's depth for
    overlapping polygons, else the nearest vertex of one polygon to the other."""
    shapes = [_chipmunk_shape(int(c), s, p, float(a)) for c, s, p, a in zip(codes, sizes, positions, angles)]
    for k in (0, 1):
        if codes[1 - k] == DISC:
            centre = tuple(float(v) for v in positions[1 - k])
            return shapes[k].point_query(centre).distance - float(sizes[1 - k][0]) / 2
    try:
        return min(p.distance for p in shapes[0].shapes_collide(shapes[1]).points)
    except AssertionError:  # pymunk asserts on shapes that do not touch
        return min(min(shapes[1 - k].point_query(tuple(float(v) for v in p)).distance for p in world[k])
                   for k in (0, 1))


def test_separation_matches_chipmunk_for_every_pair_of_shapes():
    rng = np.random.default_rng(0)
    signs = set()
    for _ in range(150):
        codes = rng.integers(0, 3, 2)
        width = rng.uniform(0.08, 0.16, 2)
        sizes = np.stack([width, np.where(codes == DISC, width, width * rng.uniform(0.5, 1.0, 2))], 1)
        sizes = sizes.astype(np.float32)
        positions = rng.uniform(0.3, 0.45, (2, 2)).astype(np.float32)
        angles = rng.uniform(-3, 3, 2).astype(np.float32)
        vertices, rounding = body_vertices(torch.tensor(codes), torch.tensor(sizes))
        world = place(vertices, torch.tensor(positions), torch.tensor(angles))                 # (2, 4, 2)
        ours = float(separation(world[:1], rounding[:1], world[1:], rounding[1:])[0])
        theirs = _chipmunk_separation(codes, sizes, positions, angles, world.numpy())
        assert ours == pytest.approx(theirs, abs=1e-6), (codes, ours, theirs)
        signs.add(bool(ours > 0))
    assert signs == {True, False}                                                              # apart and overlapping


def test_contact_frame_matches_chipmunks_contact_normal():
    """For pairs that Chipmunk finds in contact (overlapping by up to a few millimetres), our normal is
    its contact normal (from the first shape to the second) and our point lies on its contact points."""
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(100):
        codes = rng.integers(0, 3, 2)
        width = rng.uniform(0.08, 0.16, 2)
        sizes = np.stack([width, np.where(codes == DISC, width, width * rng.uniform(0.5, 1.0, 2))], 1).astype(np.float32)
        positions = rng.uniform(0.3, 0.45, (2, 2)).astype(np.float32)
        angles = rng.uniform(-3, 3, 2).astype(np.float32)
        vertices, rounding = body_vertices(torch.tensor(codes), torch.tensor(sizes))
        for _ in range(4):  # slide the second shape along the centre line until they overlap a little
            world = place(vertices, torch.tensor(positions), torch.tensor(angles))
            gap = float(separation(world[:1], rounding[:1], world[1:], rounding[1:])[0])
            line = (positions[1] - positions[0]) / np.linalg.norm(positions[1] - positions[0])
            positions[1] = positions[1] - (gap + 0.001) * line
        world = place(vertices, torch.tensor(positions), torch.tensor(angles))
        gap = float(separation(world[:1], rounding[:1], world[1:], rounding[1:])[0])
        if not -0.003 < gap <= 0:
            continue
        shapes = [_chipmunk_shape(int(c), sz, p, float(a)) for c, sz, p, a in zip(codes, sizes, positions, angles)]
        theirs = shapes[0].shapes_collide(shapes[1])
        normal, point, signed = contact_frame(world[:1], rounding[:1], world[1:], rounding[1:])
        assert float(signed[0]) == pytest.approx(gap, abs=1e-7)                     # the same search's separation
        assert float(normal[0] @ torch.tensor(tuple(theirs.normal))) > 0.999, (codes, normal, theirs.normal)
        nearest = min(float(np.linalg.norm(point[0].numpy() - np.asarray(tuple(p.point_a)))) for p in theirs.points)
        assert nearest < 0.005, (codes, point, theirs.points)
        checked += 1
    assert checked >= 50


def test_contact_frame_of_separated_shapes():
    shape = torch.tensor([DISC, DISC, BOX])
    size = torch.tensor([[0.1, 0.1], [0.06, 0.06], [0.2, 0.1]])
    vertices, rounding = body_vertices(shape, size)
    position = torch.tensor([[0.2, 0.5], [0.2, 0.7], [0.5, 0.5]])
    world = place(vertices, position, torch.zeros(3))
    a, b = torch.tensor([0, 0]), torch.tensor([1, 2])
    normal, point, signed = contact_frame(world[a], rounding[a], world[b], rounding[b])
    torch.testing.assert_close(signed, separation(world[a], rounding[a], world[b], rounding[b]))
    # two discs one above the other: the normal is the centre line, the point midway between the surfaces
    torch.testing.assert_close(normal[0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(point[0], torch.tensor([0.2, 0.5 + (0.05 + 0.2 - 0.03) / 2]))
    # a disc left of an upright box face: the face's normal, the point between the disc and the face
    torch.testing.assert_close(normal[1], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(point[1], torch.tensor([(0.25 + 0.4) / 2, 0.5]))


def test_wall_gaps_of_a_rotated_box_and_a_disc():
    shape = torch.tensor([BOX, DISC, TRIANGLE])
    size = torch.tensor([[0.2, 0.1], [0.1, 0.1], [0.1, 0.1]])
    vertices, rounding = body_vertices(shape, size)
    position = torch.tensor([[0.5, 0.5], [0.06, 0.5], [0.5, 0.5]])
    angle = torch.tensor([np.pi / 2, 0.3, 0.0])
    gaps = wall_gaps(place(vertices, position, angle), rounding, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    # the box turned upright is 0.1 wide and 0.2 tall; the disc is 0.01 from the left wall
    torch.testing.assert_close(gaps[0], torch.tensor([0.45, 0.45, 0.4, 0.4]))
    torch.testing.assert_close(gaps[1], torch.tensor([0.01, 0.89, 0.45, 0.45]))
    # the triangle's base (width) lies a third of its height below its centroid
    torch.testing.assert_close(gaps[2, 2:], torch.tensor([0.5 - 0.1 / 3, 0.5 - 0.2 / 3]))


def test_touching_agrees_with_the_solvers_contacts(objects_dataset):
    """Pairs that touch (within 5 mm) at some frame of a trajectory, against the pairs the solver
    recorded a contact for during its steps."""
    agree, touched = [], 0
    with open_object_split(objects_dataset, "train") as split:
        for i in range(len(split)):
            trajectory = split[i]
            pairs = all_pairs(torch.tensor([trajectory.num_objects]))
            pairs = pairs[:, pairs[0] < pairs[1]]
            touch = touching(torch.from_numpy(trajectory.scene.shape), torch.from_numpy(trajectory.scene.size),
                             torch.from_numpy(trajectory.position).transpose(0, 1),
                             torch.from_numpy(trajectory.angle).T, pairs, margin=0.005)            # (P, T)
            stored = torch.from_numpy(trajectory.contacts[:, pairs[0], pairs[1]]).T               # (P, T-1)
            agree.append((touch[:, 1:].any(1) == stored.any(1)).float().mean())
            touched += int(stored.any(1).sum())
    assert touched > 0                                                                          # not vacuous
    assert float(torch.stack(agree).mean()) >= 0.95, agree


def test_all_pairs_of_systems_of_different_sizes():
    pairs = all_pairs(torch.tensor([3, 1, 2]))
    expected = [(s, r) for r in range(3) for s in range(3) if s != r] + [(5, 4), (4, 5)]
    assert sorted(map(tuple, pairs.T.tolist())) == sorted(expected)
    assert pairs.shape[1] == 3 * 2 + 0 + 2 * 1

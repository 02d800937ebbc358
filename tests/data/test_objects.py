"""Canonical object datasets: metadata, geometry, write/read round trips, lazy windows, and an
actionable error (file, key, expected and found) for each kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from gns.data.objects import (BOX, DISC, SHAPES, TRIANGLE, ObjectMetadata, ObjectScene, ObjectState,
                              ObjectTrajectory, bounding_radius, box_excursion, inner_radius, compute_object_statistics,
                              is_object_dataset, load_object_metadata, local_vertices, object_area, object_moment,
                              open_object_split, save_object_metadata, validate_object_trajectory, world_vertices,
                              write_object_split)
from gns.errors import GnsInputError

FRAMES = 20  # more than one HDF5 time chunk (16 frames)
BOUNDS = [[0.0, 1.0], [0.0, 1.0]]


def make_trajectory(seed: int = 0, objects: int = 4, frames: int = FRAMES, springs: int = 0, obstacles: int = 0,
                    contacts: bool = True) -> ObjectTrajectory:
    """Random but valid arrays of every field (no physics: the format does not care)."""
    rng = np.random.default_rng(seed)
    shape = np.arange(objects) % 3
    width = rng.uniform(0.05, 0.1, objects)
    size = np.stack([width, np.where(shape == DISC, width, width * 0.7)], 1)
    mass = rng.uniform(0.1, 1.0, objects)
    scene = ObjectScene(
        bounds=np.array(BOUNDS), shape=shape, size=size, mass=mass, moment=object_moment(shape, size, mass),
        friction=rng.uniform(0, 1, objects), restitution=rng.uniform(0, 1, objects),
        colour=rng.uniform(0, 1, (objects, 3)), agent=objects - 1,
        spring_pairs=np.array([[s % objects, (s + 1) % objects] for s in range(springs)]).reshape(-1, 2),
        spring_rest_length=rng.uniform(0.1, 0.3, springs), spring_stiffness=rng.uniform(1, 5, springs),
        spring_damping=rng.uniform(0, 1, springs), obstacle_shape=np.full(obstacles, BOX),
        obstacle_position=rng.uniform(0.2, 0.8, (obstacles, 2)), obstacle_angle=rng.uniform(-1, 1, obstacles),
        obstacle_size=rng.uniform(0.05, 0.1, (obstacles, 2)))
    touch = rng.uniform(size=(frames - 1, objects, objects)) < 0.1
    return ObjectTrajectory(
        scene=scene, position=rng.uniform(0.1, 0.9, (frames, objects, 2)), angle=rng.normal(size=(frames, objects)),
        velocity=rng.normal(size=(frames, objects, 2)), angular_velocity=rng.normal(size=(frames, objects)),
        action=rng.normal(size=(frames - 1, objects, 3)),
        contacts=(touch | touch.transpose(0, 2, 1)) if contacts else None,
        wall_contacts=rng.uniform(size=(frames - 1, objects, 4)) < 0.1 if contacts else None,
        obstacle_contacts=rng.uniform(size=(frames - 1, objects, obstacles)) < 0.1 if contacts else None)


def make_metadata(**changes) -> ObjectMetadata:
    return dataclasses.replace(ObjectMetadata(bounds=BOUNDS, dt=0.05, sequence_length=FRAMES - 1,
                                              num_objects=[2, 6], contacts=True), **changes)


def make_dataset(root: Path) -> list[ObjectTrajectory]:
    """A train split of three trajectories (springs and obstacles in the second) and the metadata."""
    trajectories = [make_trajectory(0), make_trajectory(1, objects=5, springs=2, obstacles=2), make_trajectory(2)]
    save_object_metadata(make_metadata(), root)
    write_object_split(root / "train.h5", trajectories, make_metadata())
    return trajectories


def errors_name(exc: pytest.ExceptionInfo, file: Path, key: str) -> None:
    message = str(exc.value)
    assert f"file '{file}'" in message and f"key '{key}'" in message, message


def assert_same(got: ObjectTrajectory, want: ObjectTrajectory) -> None:
    """Every array equal after the float32 / int rounding of the format."""
    for name, values in want.arrays().items():
        stored = got.arrays()[name]
        expected = np.asarray(values)
        if expected.dtype.kind == "f":
            expected = expected.astype(np.float32)
        np.testing.assert_array_equal(stored, expected, err_msg=name)
    np.testing.assert_array_equal(got.scene.bounds, np.float32(BOUNDS))


# ------------------------------------------------------------------------ geometry
def test_shapes_are_centred_on_their_centre_of_mass():
    for shape in (BOX, TRIANGLE):
        vertices = local_vertices(shape, (0.2, 0.1))
        # the centroid of a box or a triangle is the mean of its vertices
        np.testing.assert_allclose(vertices.mean(0), 0.0, atol=1e-15)
        np.testing.assert_allclose(vertices.max(0) - vertices.min(0), (0.2, 0.1))
        radius = bounding_radius(np.array([shape]), np.array([[0.2, 0.1]]))[0]
        assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(radius)
    sizes = np.array([[0.2, 0.2], [0.2, 0.1], [0.2, 0.1]])
    np.testing.assert_allclose(object_area(np.array([DISC, BOX, TRIANGLE]), sizes), [np.pi * 0.01, 0.02, 0.01])


def test_inner_radius_is_the_distance_to_the_nearest_side():
    size = np.array([[0.3, 0.12], [0.1, 0.25]])
    for shape in (BOX, TRIANGLE):
        for extent in size:
            vertices = local_vertices(shape, extent)
            edges = np.roll(vertices, -1, 0) - vertices
            # distance from the origin to each side's line: |cross(edge, vertex)| / |edge|
            cross = edges[:, 0] * vertices[:, 1] - edges[:, 1] * vertices[:, 0]
            distance = np.abs(cross) / np.linalg.norm(edges, axis=1)
            assert inner_radius(np.array([shape]), extent[None])[0] == pytest.approx(distance.min())
    assert inner_radius(np.array([DISC]), np.array([[0.2, 0.2]]))[0] == pytest.approx(0.1)


def test_moments_match_pymunk():
    pymunk = pytest.importorskip("pymunk")
    shape = np.array([DISC, BOX, TRIANGLE])
    size = np.array([[0.2, 0.2], [0.2, 0.1], [0.3, 0.12]])
    mass = np.array([2.0, 3.0, 0.5])
    want = [pymunk.moment_for_circle(2.0, 0, 0.1),
            pymunk.moment_for_poly(3.0, [tuple(v) for v in local_vertices(BOX, size[1])]),
            pymunk.moment_for_poly(0.5, [tuple(v) for v in local_vertices(TRIANGLE, size[2])])]
    np.testing.assert_allclose(object_moment(shape, size, mass), want, rtol=1e-12)


def test_box_excursion_measures_how_far_shapes_reach_out():
    shape, size = np.array([DISC, BOX]), np.array([[0.2, 0.2], [0.2, 0.1]])
    position = np.array([[[0.05, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.95, 0.5]]])     # (F=2, K=2, 2)
    angle = np.array([[0.0, np.pi / 2], [0.0, 0.0]])
    excursion = box_excursion(shape, size, position, angle, np.array(BOUNDS))
    np.testing.assert_allclose(excursion, [[0.05, 0.0], [0.0, 0.05]], atol=1e-12)
    turned = world_vertices(BOX, (0.2, 0.1), np.array([0.5, 0.5]), np.pi / 2)
    np.testing.assert_allclose(turned.max(0) - turned.min(0), (0.1, 0.2), atol=1e-12)


def test_selecting_objects_reindexes_springs_and_agent():
    traj = make_trajectory(0, objects=5, springs=3)   # springs 0-1, 1-2, 2-3; agent 4
    scene = traj.scene.select([4, 2, 3])
    assert scene.num_objects == 3 and scene.agent == 0
    np.testing.assert_array_equal(scene.spring_pairs, [[1, 2]])  # only 2-3 survives
    np.testing.assert_array_equal(scene.mass, traj.scene.mass[[4, 2, 3]])
    state = traj.state(0).select([4, 2, 3])
    np.testing.assert_array_equal(state.position, traj.position[0, [4, 2, 3]])
    with pytest.raises(GnsInputError, match="the agent cannot be removed"):
        traj.scene.select([0, 1])
    with pytest.raises(GnsInputError, match="distinct indices"):
        traj.scene.select([0, 0, 4])


# ------------------------------------------------------------------------ metadata
def test_metadata_round_trip_keeps_unknown_keys(tmp_path):
    meta = make_metadata(extra={"note": "hi"}, statistics={k: [0.0] * w for k, w in
                                                            (("vel_mean", 2), ("vel_std", 2), ("acc_mean", 2),
                                                             ("acc_std", 2), ("angular_vel_mean", 1),
                                                             ("angular_vel_std", 1), ("angular_acc_mean", 1),
                                                             ("angular_acc_std", 1), ("action_mean", 3),
                                                             ("action_std", 3))})
    save_object_metadata(meta, tmp_path)
    assert load_object_metadata(tmp_path) == meta
    assert is_object_dataset(tmp_path) and not is_object_dataset(tmp_path / "nowhere")
    raw = json.loads((tmp_path / "metadata.json").read_text())
    assert raw["kind"] == "objects" and raw["dim"] == 2 and raw["shape_kinds"] == SHAPES
    assert raw["action_components"] == ["force_x", "force_y", "torque"]


@pytest.mark.parametrize("change, key", [
    (lambda d: d.update(kind="mesh"), "kind"),
    (lambda d: d.pop("dt"), "dt"),
    (lambda d: d.update(bounds=[[0, 1], [1, 0]]), "bounds"),
    (lambda d: d.update(num_objects=[0, 3]), "num_objects"),
    (lambda d: d.update(shape_kinds={"disc": 1}), "shape_kinds"),
    (lambda d: d.update(vel_mean=[0.0, 0.0]), "vel_std"),  # statistics come all together
    (lambda d: d.update(dim=3), "dim"),
    (lambda d: d.update(contacts="yes"), "contacts"),
])
def test_metadata_errors_name_file_and_key(tmp_path, change, key):
    raw = make_metadata().to_dict()
    change(raw)
    (tmp_path / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(GnsInputError) as exc:
        load_object_metadata(tmp_path)
    errors_name(exc, tmp_path / "metadata.json", key)


# ------------------------------------------------------------------------ round trip and lazy reading
def test_write_then_read_is_exact(tmp_path):
    trajectories = make_dataset(tmp_path)
    with open_object_split(tmp_path, "train") as split:
        assert len(split) == 3 and split.num_frames(1) == FRAMES and split.num_objects(1) == 5
        for i, want in enumerate(trajectories):
            got = split[i]
            assert_same(got, want)
            assert got.position.dtype == np.float32 and got.scene.shape.dtype == np.int64
            assert got.contacts.dtype == bool and got.key == f"{i:05d}"
        assert split[0].obstacle_contacts.shape == (FRAMES - 1, 4, 0)
        assert split[1].scene.num_springs == 2 and split[1].scene.num_obstacles == 2
    with h5py.File(tmp_path / "train.h5") as f:
        assert "spring_pairs" not in f["00000"] and f["00001/spring_pairs"].dtype == np.int32
        assert f["00000/position"].chunks == (16, 4, 2)


def test_trajectories_without_contacts_round_trip(tmp_path):
    want = make_trajectory(3, contacts=False)
    metadata = make_metadata(contacts=False)
    write_object_split(tmp_path / "train.h5", [want], metadata)
    with pytest.raises(GnsInputError, match="lacks an array") as exc:  # the metadata promises contacts
        write_object_split(tmp_path / "valid.h5", [want], make_metadata())
    errors_name(exc, tmp_path / "valid.h5", "00000/contacts")
    got = open_object_split(tmp_path, "train", metadata)[0]
    assert got.contacts is None and not got.has_contacts
    assert_same(got, want)


def test_windows_read_frames_and_the_steps_between_them(tmp_path):
    trajectories = make_dataset(tmp_path)
    with open_object_split(tmp_path, "train") as split:
        window = split.read_window(1, 14, 19)
        want = trajectories[1]
        assert window.num_frames == 5 and window.action.shape == (4, 5, 3)
        np.testing.assert_array_equal(window.angle, want.angle[14:19].astype(np.float32))
        np.testing.assert_array_equal(window.action, want.action[14:18].astype(np.float32))
        np.testing.assert_array_equal(window.obstacle_contacts, want.obstacle_contacts[14:18])
        np.testing.assert_array_equal(window.state(0).velocity, want.velocity[14].astype(np.float32))
        assert window.scene is split.scene(1)  # checked and read once, then cached
        with pytest.raises(IndexError, match=r"window \[18, 21\) is outside the 20 frames"):
            split.read_window(0, 18, 21)


def test_non_finite_values_are_found_lazily(tmp_path):
    make_dataset(tmp_path)
    with h5py.File(tmp_path / "train.h5", "r+") as f:
        f["00000/velocity"][17, 2, 1] = np.nan
    with open_object_split(tmp_path, "train") as split:
        split.read_window(0, 0, 17)  # the NaN is outside the window: not read, not reported
        with pytest.raises(GnsInputError, match=r"00000/velocity': non-finite value at time index 17, object 2"):
            split.read_window(0, 15, 19)


def test_split_pickles_and_reopens(tmp_path):
    trajectories = make_dataset(tmp_path)
    split = open_object_split(tmp_path, "train")
    split[0]
    copy = pickle.loads(pickle.dumps(split))
    split.close()
    assert_same(copy[2], trajectories[2])
    copy.close()


def test_statistics_are_per_step_finite_differences():
    trajectories = [make_trajectory(0), make_trajectory(1, objects=3)]
    stats = compute_object_statistics(trajectories)

    def flat(arrays):
        return np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays])

    position = [t.position.astype(np.float64) for t in trajectories]
    velocity = flat([np.diff(p, axis=0) for p in position])
    acceleration = flat([np.diff(p, n=2, axis=0) for p in position])
    np.testing.assert_allclose(stats["vel_std"], velocity.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["acc_mean"], acceleration.mean(0), rtol=1e-9, atol=1e-15)
    angle = [t.angle[..., None].astype(np.float64) for t in trajectories]
    np.testing.assert_allclose(stats["angular_acc_std"], flat([np.diff(a, n=2, axis=0) for a in angle]).std(0))
    np.testing.assert_allclose(stats["action_std"], flat([t.action for t in trajectories]).std(0), rtol=1e-9)
    make_metadata(statistics=stats)  # a valid metadata entry


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("change, key, message", [
    (lambda t: setattr(t, "velocity", t.velocity[:, :3]), "00001/velocity",
     r"expected \(T, K, 2\) = \(20, 4, 2\), found \(20, 3, 2\)"),
    (lambda t: setattr(t, "action", t.action[:-1]), "00001/action", r"expected \(T-1, K, 3\) = \(19, 4, 3\)"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, mass=t.scene.mass * np.array([1, -1, 1, 1]))),
     "00001/mass", r"object 1: mass must be positive .*expected > 0, found -0\.\d+"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, size=t.scene.size * [[1, 1], [1, 1], [0, 1], [1, 1]])),
     "00001/size", r"object 2: sizes must be positive"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, shape=np.array([0, 1, 7, 1]))),
     "00001/shape", r"object 2: unknown shape code .*found 7"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, agent=4)), "00001/agent", r"found 4"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, colour=t.scene.colour + 1)), "00001/colour",
     r"object 0: colour outside"),
    (lambda t: setattr(t, "scene", dataclasses.replace(t.scene, bounds=np.array([[0, 2], [0, 1]]))), "00001/bounds",
     "box differs"),
    (lambda t: t.position.__setitem__((3, 1, 0), np.inf), "00001/position", "time index 3, object 1"),
])
def test_bad_trajectories_are_refused_on_write_and_the_old_file_is_kept(tmp_path, change, key, message):
    path = tmp_path / "train.h5"
    write_object_split(path, [make_trajectory(5)], make_metadata())
    before = path.read_bytes()
    bad = make_trajectory(0)
    change(bad)
    with pytest.raises(GnsInputError, match=message) as exc:
        write_object_split(path, [make_trajectory(1), bad], make_metadata())
    errors_name(exc, path, key)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]


def _edit(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f["00000"])


def _replace(name: str, make):
    def edit(group: h5py.Group) -> None:
        values = make(group[name][()])
        del group[name]
        group.create_dataset(name, data=values)
    return edit


@pytest.mark.parametrize("edit, key, message", [
    (lambda g: g.__delitem__("mass"), "00000/mass", r"lacks an array.*found \['action', 'agent'"),
    (lambda g: g.__delitem__("wall_contacts"), "00000/wall_contacts", "lacks an array"),
    (_replace("angle", lambda v: v[:, :, None]), "00000/angle", r"expected \(T, K\) = \(20, 4\), found \(20, 4, 1\)"),
    (_replace("colour", lambda v: v[:, :2]), "00000/colour", r"expected \(K, 3\) = \(4, 3\), found \(4, 2\)"),
    (_replace("shape", lambda v: v.astype(np.float32)), "00000/shape", "expected integer, found float32"),
    (_replace("friction", lambda v: -v), "00000/friction", "object 0: friction must be non-negative"),
    (lambda g: g.create_dataset("speed", data=np.zeros(3)), "00000/speed", "unknown array"),
    (lambda g: g.create_dataset("spring_pairs", data=np.zeros((1, 2), np.int32)), "00000/spring_rest_length",
     "lacks an array"),
])
def test_bad_files_are_refused_on_read(tmp_path, edit, key, message):
    make_dataset(tmp_path)
    _edit(tmp_path / "train.h5", edit)
    with open_object_split(tmp_path, "train") as split:
        split[1]  # other trajectories stay readable
        with pytest.raises(GnsInputError, match=message) as exc:
            split.read_window(0, 0, 2)
    errors_name(exc, tmp_path / "train.h5", key)


def test_validation_returns_canonical_dtypes():
    traj = validate_object_trajectory(make_trajectory(0, springs=1, obstacles=1), make_metadata())
    assert traj.position.dtype == np.float32 and traj.scene.mass.dtype == np.float32
    assert traj.scene.spring_pairs.dtype == np.int64 and isinstance(traj.scene.agent, int)
    assert isinstance(traj.state(3), ObjectState)


def test_missing_split_and_metadata_are_named(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(GnsInputError, match=r"no test split: found train\.h5"):
        open_object_split(tmp_path, "test")
    (tmp_path / "metadata.json").unlink()
    with pytest.raises(GnsInputError, match="no metadata file"):
        open_object_split(tmp_path, "train")

"""Objects2D reference solver: determinism, exact restarts from stored and edited states, actions,
contacts, physical units, bad input, and the written dataset."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pymunk")

from gns.data.objects import (BOX, DISC, STATE_ARRAYS, ObjectScene, ObjectState, box_excursion,  # noqa: E402
                              load_object_metadata, object_moment, open_object_split)
from gns.errors import GnsInputError  # noqa: E402
from gns.solvers.objects2d import (Objects2DConfig, check_state, config_from_metadata,  # noqa: E402
                                   generate_objects2d, overlap_depths, restart_check, sample_scene, simulate)

# Short trajectories with every option on: springs, obstacles, actions on all objects.
TINY = Objects2DConfig(num_train=3, num_valid=1, num_test=1, num_steps=30, spring_probability=0.3, min_obstacles=1,
                       max_obstacles=2, num_workers=1, scenes_per_batch=2)
DYNAMIC = (*STATE_ARRAYS, "contacts", "wall_contacts", "obstacle_contacts")


@pytest.fixture(scope="module")
def factual():
    """A TINY trajectory with springs and obstacles (its scene is redrawn until it has both)."""
    for index in range(20):
        scene, state, actions = sample_scene(TINY, 0, index)
        if scene.num_springs and scene.num_obstacles:
            return simulate(scene, state, actions, TINY)
    raise AssertionError("no scene with springs and obstacles in 20 draws")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The TINY dataset: reference; the same seed on 2 workers with other batches; another seed."""
    root = tmp_path_factory.mktemp("objects2d")
    reference = generate_objects2d(root / "a", TINY, progress=False)
    again = generate_objects2d(root / "b", dataclasses.replace(TINY, num_workers=2, scenes_per_batch=1),
                               progress=False)
    other = generate_objects2d(root / "c", dataclasses.replace(TINY, seed=1), progress=False)
    return reference, again, other


def assert_identical(got, want, start: int = 0) -> None:
    for name in DYNAMIC:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name)[start:], err_msg=name)


def alone(shape: int, size, mass: float, position=(0.5, 0.5), velocity=(0.0, 0.0), **scene) -> tuple:
    """One object at rest (or moving) in the middle of the unit box."""
    shape_, size_ = np.array([shape]), np.array([size], dtype=float)
    built = ObjectScene(bounds=np.array([[0.0, 1.0], [0.0, 1.0]]), shape=shape_, size=size_, mass=np.array([mass]),
                        moment=object_moment(shape_, size_, [mass]), friction=np.array([0.5]),
                        restitution=np.array([0.5]), colour=np.array([[1.0, 0.0, 0.0]]), **scene)
    state = ObjectState(np.array([position]), np.zeros(1), np.array([velocity]), np.zeros(1))
    return built, state


# ------------------------------------------------------------------------------ config and scenes
def test_config_rejects_bad_values():
    with pytest.raises(GnsInputError, match="action_objects"):
        Objects2DConfig(action_objects="some")
    with pytest.raises(GnsInputError, match="shape_kinds"):
        Objects2DConfig(shape_kinds=("disc", "star"))
    with pytest.raises(GnsInputError, match="min_objects"):
        Objects2DConfig(min_objects=5, max_objects=3)
    with pytest.raises(GnsInputError, match="size_range"):
        Objects2DConfig(size_range=(0.5, 0.9))
    assert Objects2DConfig(bounds=[[0, 2], [0, 1]]).bounds == ((0, 2), (0, 1))  # YAML lists become tuples


def test_scene_depends_only_on_seed_split_and_index():
    scene, state, actions = sample_scene(TINY, 0, 1)
    again = sample_scene(dataclasses.replace(TINY, num_train=100, num_workers=2), 0, 1)
    for name in ("shape", "size", "mass", "colour", "spring_pairs", "obstacle_position"):
        np.testing.assert_array_equal(getattr(again[0], name), getattr(scene, name))
    np.testing.assert_array_equal(again[1].position, state.position)
    np.testing.assert_array_equal(again[2], actions)
    assert not np.array_equal(sample_scene(TINY, 1, 1)[1].position[:1], state.position[:1])
    assert TINY.min_objects <= scene.num_objects <= TINY.max_objects and 0 <= scene.agent < scene.num_objects
    assert actions.shape == (TINY.num_steps, scene.num_objects, 3) and actions.dtype == np.float32
    assert scene.mass.dtype == np.float32 and (scene.colour >= 0).all() and (scene.colour <= 1).all()
    check_state(scene, state, TINY)  # a valid start: in the box, nothing overlapping


def test_actions_push_only_the_objects_asked_for():
    config = dataclasses.replace(TINY, action_objects="agent")
    scene, _, actions = sample_scene(config, 0, 0)
    others = np.arange(scene.num_objects) != scene.agent
    assert (actions[:, others] == 0).all() and (actions[:, scene.agent] != 0).any()
    np.testing.assert_array_equal(actions[0], actions[config.action_hold_frames - 1])  # held for a few frames
    assert (sample_scene(dataclasses.replace(TINY, action_objects="none"), 0, 0)[2] == 0).all()


def test_importing_the_solver_does_not_import_pymunk():
    code = "import sys, gns.solvers.objects2d, gns.data.objects; assert 'pymunk' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ determinism and restarts
def test_simulation_is_deterministic(factual):
    again = simulate(factual.scene, factual.state(0), factual.action, TINY)
    assert_identical(again, factual)


@pytest.mark.parametrize("start", [1, 7, 29])
def test_restart_from_a_stored_frame_reproduces_the_continuation(factual, start):
    again = simulate(factual.scene, factual.state(start), factual.action[start:], TINY)
    assert again.num_frames == factual.num_frames - start
    assert_identical(again, factual, start)


def test_restart_from_an_edited_state_is_exact_and_differs(factual):
    start = 10
    kicked = factual.state(start)
    kicked.velocity[0] += (0.5, -0.3)  # kick object 0
    first = simulate(factual.scene, kicked, factual.action[start:], TINY)
    # Restarting the counterfactual from its own frame 12 gives its continuation back, exactly.
    assert_identical(simulate(first.scene, first.state(12), first.action[12:], TINY), first, 12)
    assert not np.array_equal(first.position[-1], factual.position[-1])

    keep = [k for k in range(factual.num_objects) if k != (factual.scene.agent + 1) % factual.num_objects]
    removed = simulate(factual.scene.select(keep), factual.state(start).select(keep),
                       factual.action[start:, keep], TINY)
    assert removed.num_objects == factual.num_objects - 1

    scene = factual.scene
    mass = scene.mass * np.where(np.arange(scene.num_objects) == 0, 3.0, 1.0)  # re-weigh object 0
    heavier = dataclasses.replace(scene, mass=mass, moment=object_moment(scene.shape, scene.size, mass))
    reweighed = simulate(heavier, factual.state(start), factual.action[start:], TINY)
    assert not np.array_equal(reweighed.position[-1, 0], factual.position[-1, 0])


def test_restart_from_the_files_alone_is_exact(datasets):
    reference = datasets[0]
    for split, index, start in (("train", 2, 0), ("test", 0, 17)):
        assert restart_check(reference, split, index, start)["identical"]
    metadata = load_object_metadata(reference)
    assert metadata.generator["validation"]["restart"]["identical"]
    assert config_from_metadata(metadata) == TINY


# ------------------------------------------------------------------------------ physics
def test_actions_change_the_trajectory(factual):
    still = simulate(factual.scene, factual.state(0), np.zeros_like(factual.action), TINY)
    assert not np.array_equal(still.position, factual.position)
    assert (still.action == 0).all()
    idle = simulate(factual.scene, factual.state(0), None, TINY, num_steps=TINY.num_steps)
    assert_identical(idle, still)


def test_forces_and_torques_are_newtons_and_newton_metres():
    config = dataclasses.replace(TINY, damping=1.0)  # no damping: a free body obeys F = m a exactly
    scene, state = alone(BOX, (0.1, 0.05), 2.0)
    force, torque = np.array([0.6, -0.4]), 0.003
    out = simulate(scene, state, np.array([[[*force, torque]]]), config)
    np.testing.assert_allclose(out.velocity[1, 0], force / 2.0 * config.frame_dt, rtol=1e-5)
    np.testing.assert_allclose(out.angular_velocity[1, 0], torque / scene.moment[0] * config.frame_dt, rtol=1e-5)


def test_contacts_are_recorded_for_objects_walls_and_obstacles():
    config = dataclasses.replace(TINY, damping=1.0)
    scene, state = alone(DISC, (0.1, 0.1), 1.0, position=(0.3, 0.5), velocity=(-2.0, 0.0),
                         obstacle_shape=np.array([BOX]), obstacle_position=np.array([[0.7, 0.5]]),
                         obstacle_angle=np.zeros(1), obstacle_size=np.array([[0.1, 0.1]]))
    out = simulate(scene, state, None, config, num_steps=30)
    left, right = out.wall_contacts[:, 0, 0], out.wall_contacts[:, 0, 1]
    assert left.any() and not right.any() and not out.wall_contacts[:, 0, 2:].any()
    bounce = int(np.argmax(left))
    assert out.velocity[bounce + 1, 0, 0] > 0 > out.velocity[bounce, 0, 0]  # it came back from the left wall
    assert out.obstacle_contacts[:, 0, 0].any()  # and went on to hit the obstacle on the right

    pair = ObjectScene(**{name: np.concatenate([getattr(scene, name)] * 2) for name in
                          ("shape", "size", "mass", "moment", "friction", "restitution", "colour")},
                       bounds=scene.bounds)
    towards = ObjectState(np.array([[0.3, 0.5], [0.7, 0.5]]), np.zeros(2), np.array([[1.0, 0], [-1.0, 0]]),
                          np.zeros(2))
    out = simulate(pair, towards, None, config, num_steps=10)
    assert out.contacts[:, 0, 1].any() and (out.contacts == out.contacts.transpose(0, 2, 1)).all()
    assert not out.contacts[:, 0, 0].any()


def test_objects_stay_in_the_box_over_generated_trajectories(datasets):
    with open_object_split(datasets[0], "train") as split:
        for i in range(len(split)):
            traj = split[i]
            scene = traj.scene
            assert box_excursion(scene.shape, scene.size, traj.position, traj.angle, scene.bounds).max() < 0.01
            assert overlap_depths(scene, traj.position, traj.angle).max() < 0.01
            assert traj.velocity.std() > 0.01  # things move


# ------------------------------------------------------------------------------ bad input
def _moved(factual, k: int, position) -> ObjectState:
    state = factual.state(0)
    state.position[k] = position
    return state


@pytest.mark.parametrize("edit, key, message", [
    (lambda f: (f.scene, _moved(f, 1, f.position[0, 0] + 0.01), f.action), "state/position",
     r"object 0 and object 1 overlap by 0\.\d+ m .*found \{'object 0': \["),
    (lambda f: (f.scene, _moved(f, 2, (1.02, 0.5)), f.action), "state/position",
     r"object 2 reaches 0\.\d+ m outside the box .*found \[1\.02"),
    (lambda f: (f.scene, _moved(f, 1, f.scene.obstacle_position[0]), f.action), "state/position",
     r"object 1 and obstacle 0 overlap"),
    (lambda f: (dataclasses.replace(f.scene, obstacle_position=f.scene.obstacle_position + [[0.0, 5.0]]),
                f.state(0), f.action), "obstacle_position", r"obstacle 0 reaches \d\.\d+ m outside the box"),
    (lambda f: (dataclasses.replace(f.scene, mass=f.scene.mass * np.where(np.arange(f.num_objects) == 2, -1, 1)),
                f.state(0), f.action), "scene/mass", r"object 2: mass must be positive .*expected > 0, found -"),
    (lambda f: (dataclasses.replace(f.scene, size=np.where(np.arange(f.num_objects)[:, None] == 1, 0.0,
                                                           f.scene.size)), f.state(0), f.action),
     "scene/size", r"object 1: sizes must be positive .*found \[0\.0, 0\.0\]"),
    (lambda f: (f.scene, f.state(0), f.action[:, :-1]), "actions", r"expected shape \(S, \d, 3\)"),
    (lambda f: (f.scene, f.state(0), f.action[..., :2]), "actions", r"found shape \(30, \d, 2\)"),
    (lambda f: (f.scene, ObjectState(f.position[0, :-1], f.angle[0, :-1], f.velocity[0, :-1],
                                     f.angular_velocity[0, :-1]), f.action), "state/position", "does not match"),
])
def test_bad_input_names_the_object_and_value(factual, edit, key, message):
    scene, state, actions = edit(factual)
    with pytest.raises(GnsInputError, match=message) as exc:
        simulate(scene, state, actions, TINY)
    assert f"key '{key}'" in str(exc.value)


def test_actions_of_the_wrong_length():
    scene, state = alone(DISC, (0.1, 0.1), 1.0)
    with pytest.raises(GnsInputError, match=r"actions cover 4 steps, not the 5 asked for .*found shape \(4, 1, 3\)"):
        simulate(scene, state, np.zeros((4, 1, 3)), TINY, num_steps=5)
    actions = np.zeros((4, 1, 3))
    actions[2, 0, 1] = np.nan
    with pytest.raises(GnsInputError, match=r"object 0: non-finite action at step 2 .*found \[0\.0, nan, 0\.0\]"):
        simulate(scene, state, actions, TINY)
    with pytest.raises(GnsInputError, match="num_steps"):
        simulate(scene, state, None, TINY)


# ------------------------------------------------------------------------------ the dataset
def test_generation_is_reproducible_and_seeded(datasets):
    import h5py

    reference, again, other = datasets
    for split in ("train", "valid", "test"):
        with h5py.File(reference / f"{split}.h5") as a, h5py.File(again / f"{split}.h5") as b, \
                h5py.File(other / f"{split}.h5") as c:
            assert list(a) == list(b)
            for key in a:
                for name in a[key]:
                    np.testing.assert_array_equal(a[key][name][()], b[key][name][()], err_msg=f"{split}/{key}/{name}")
            assert not np.array_equal(a["00000/position"][0], c["00000/position"][0])


def test_the_written_dataset_is_described_by_its_metadata(datasets):
    metadata = load_object_metadata(datasets[0])
    assert metadata.sequence_length == TINY.num_steps and metadata.dt == pytest.approx(TINY.frame_dt)
    assert metadata.contacts and metadata.statistics["vel_std"][0] > 0
    validation = metadata.generator["validation"]
    assert validation["trajectories"] == {"train": 3, "valid": 1, "test": 1}
    assert validation["max_overlap"] <= TINY.overlap_tolerance and validation["finite"]
    with open_object_split(datasets[0], "valid") as split:
        traj = split[0]
        assert traj.num_frames == TINY.num_steps + 1 and traj.action.shape == (TINY.num_steps, traj.num_objects, 3)


def test_video_renders_from_the_files_alone(datasets):
    from gns.objects.video import render_object_frames

    with open_object_split(datasets[0], "train") as split:
        traj = split[0]
    images = render_object_frames(traj, 128, frames=[0])
    for k in range(traj.num_objects):  # frame 0: objects apart, so each centre pixel is its own
        x, y = traj.position[0, k]
        np.testing.assert_array_equal(images[0, int((1 - y) * 128), int(x * 128)], np.round(traj.scene.colour[k] * 255))


def test_command_line_generates_a_small_dataset(tmp_path):
    from gns.cli import main

    assert main(["generate", "objects2d", "--small", "--out", str(tmp_path), "--param", "num_workers=1",
                 "--param", "num_steps=12", "--param", "shape_kinds=disc,box", "--param", "bounds=[[0,2],[0,1]]",
                 "--seed", "3"]) == 0
    metadata = load_object_metadata(tmp_path)
    assert metadata.sequence_length == 12 and metadata.generator["seed"] == 3 and metadata.bounds[0] == [0, 2]
    validation = metadata.generator["validation"]
    assert validation["trajectories"] == {"train": 4, "valid": 2, "test": 2} and validation["shapes"]["triangle"] == 0
    assert config_from_metadata(metadata).bounds == ((0, 2), (0, 1))


def test_module_entry_point_prints_the_validation(tmp_path, capsys):
    from gns.solvers.objects2d import main

    main(["--out", str(tmp_path), "--small", "--workers", "1", "--seed", "2"])
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path}" in printed and '"identical": true' in printed

"""The mesh task on the shared training loop: loss falls, exact resume, losses, bad input."""

import csv

import h5py
import pytest
import torch

from gns.errors import CheckpointMismatchError, GnsInputError
from gns.train.loop import Trainer
from gns.domains import load_simulator
from gns.mesh.task import MeshTask

# The mesh tests train a wider model and validate less often than the conftest default.
MESH = ("model.latent_size=32", "train.eval_every=40")


def losses(path):
    with open(path) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("kind", ["cloth", "flow", "cloth-history"])
def test_short_training_run_loss_falls(kind, cloth_dataset, flow_dataset, tmp_path, small_config, train_small):
    dataset = flow_dataset if kind == "flow" else cloth_dataset
    extra = ["mesh.history=2"] if kind == "cloth-history" else []
    trainer = train_small(small_config(dataset, tmp_path / "run", *MESH, "train.steps=150", "train.noise_std=1e-4",
                                       *extra))
    values = losses(tmp_path / "run" / "log.csv")
    assert values[-1] < 0.5 * values[0], values
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    simulator, config, metadata = load_simulator(tmp_path / "run" / "checkpoints" / "latest.pt", kind="mesh")
    for a, b in zip(simulator.state_dict().values(), trainer.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_resume_after_interrupt_continues_exactly(cloth_dataset, tmp_path, small_config, train_small):
    straight = train_small(small_config(cloth_dataset, tmp_path / "a", *MESH, "train.steps=30"))
    train_small(small_config(cloth_dataset, tmp_path / "b", *MESH, "train.steps=30"), steps=15)
    resumed = train_small(small_config(cloth_dataset, tmp_path / "b", *MESH, "train.steps=30"))
    assert resumed.step == 30
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("loss", ["pushforward", "bptt"])
def test_rollout_losses_train(cloth_dataset, tmp_path, loss, small_config, train_small):
    trainer = train_small(small_config(cloth_dataset, tmp_path / "run", *MESH, "train.steps=12", f"train.loss={loss}",
                             "train.pushforward_steps=[0,2]", "train.pushforward_unrolls=[0,3]",
                             "train.pushforward_probs=[1,3]"))
    assert trainer.step == 12
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_checkpoint_from_incompatible_config_is_refused(cloth_dataset, tmp_path, small_config, train_small):
    train_small(small_config(cloth_dataset, tmp_path / "run", *MESH, "train.steps=2"))
    config = small_config(cloth_dataset, tmp_path / "run", *MESH, "train.steps=4", "mesh.world_edges=false")
    with pytest.raises(CheckpointMismatchError, match="world_edges"):
        Trainer(config, MeshTask(config), config.out_dir).resume()


def test_particle_checkpoint_is_not_a_mesh_checkpoint(bouncing_dataset, cloth_dataset, tmp_path, small_config):
    from gns.particles.task import ParticleTask
    config = small_config(bouncing_dataset, tmp_path, *MESH, "train.steps=1")
    Trainer(config, ParticleTask(config), tmp_path).train(progress=False)
    with pytest.raises(GnsInputError, match="not a mesh checkpoint"):
        load_simulator(tmp_path / "checkpoints" / "latest.pt", kind="mesh")
    mesh = small_config(cloth_dataset, tmp_path, *MESH, "train.steps=2")           # the same run folder, a mesh dataset
    with pytest.raises(GnsInputError, match="not from a mesh simulator"):
        Trainer(mesh, MeshTask(mesh), tmp_path).resume()


def _copy_dataset(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_undeclared_node_type_is_refused(cloth_dataset, tmp_path, small_config):
    dataset = _copy_dataset(cloth_dataset, tmp_path / "ds")
    with h5py.File(dataset / "train.h5", "r+") as f:
        node_type = f["00000/node_type"][()]
        node_type[3] = 1                                  # OBSTACLE, which the dataset does not declare
        f["00000/node_type"][...] = node_type
    with pytest.raises(GnsInputError, match="node_type"):
        MeshTask(small_config(dataset, tmp_path / "run", *MESH)).sampler.load([(0, 0)], 3)


def test_degenerate_cell_is_refused_before_training(cloth_dataset, tmp_path, small_config):
    dataset = _copy_dataset(cloth_dataset, tmp_path / "ds")
    with h5py.File(dataset / "train.h5", "r+") as f:
        cells = f["00001/cells"][()]
        cells[5] = [cells[5][0], cells[5][1], cells[5][1]]   # a repeated corner: zero area
        f["00001/cells"][...] = cells
    task = MeshTask(small_config(dataset, tmp_path / "run", *MESH))
    with pytest.raises(GnsInputError, match="00001/cells"):
        task.sampler.load([(1, 0)], 3)


def test_field_length_mismatch_is_refused(cloth_dataset, tmp_path, small_config):
    dataset = _copy_dataset(cloth_dataset, tmp_path / "ds")
    with h5py.File(dataset / "train.h5", "r+") as f:
        values = f["00000/world_pos"][()]
        del f["00000/world_pos"]
        f["00000/world_pos"] = values[:, :-2]          # two nodes short of the mesh
    with pytest.raises(GnsInputError, match="world_pos"):
        MeshTask(small_config(dataset, tmp_path / "run", *MESH)).sampler.load([(0, 0)], 3)


def test_world_edge_radius_connecting_everything_is_refused(cloth_dataset, tmp_path, small_config, train_small):
    config = small_config(cloth_dataset, tmp_path / "run", *MESH, "mesh.world_edge_radius=50.0", "train.steps=1")
    with pytest.raises(GnsInputError, match="radius"):
        train_small(config)


def test_noise_correction_refused_for_a_first_order_target(flow_dataset, tmp_path, small_config):
    config = small_config(flow_dataset, tmp_path / "run", *MESH, "train.noise_correction=0.5")
    with pytest.raises(GnsInputError, match="train.noise_correction"):
        MeshTask(config)


def test_velocity_offset_refused_for_a_first_order_target_or_below_zero(flow_dataset, cloth_dataset, tmp_path,
                                                                         small_config):
    for dataset, value in ((flow_dataset, "1e-4"), (cloth_dataset, "-1e-4")):
        config = small_config(dataset, tmp_path / "run", *MESH, f"train.velocity_offset_std={value}")
        with pytest.raises(GnsInputError, match="train.velocity_offset_std"):
            MeshTask(config)


def test_impact_windows_refused_for_meshes(cloth_dataset, tmp_path, small_config):
    config = small_config(cloth_dataset, tmp_path / "run", *MESH, "train.impact_fraction=0.5")
    with pytest.raises(GnsInputError, match="train.impact_fraction"):
        MeshTask(config)


def test_velocity_offset_trains_cloth(cloth_dataset, tmp_path, small_config, train_small):
    trainer = train_small(small_config(cloth_dataset, tmp_path / "run", *MESH, "train.steps=4",
                                       "train.velocity_offset_std=1e-3"))
    assert trainer.step == 4 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_noise_correction_trains_cloth(cloth_dataset, tmp_path, small_config, train_small):
    trainer = train_small(small_config(cloth_dataset, tmp_path / "run", *MESH, "train.steps=4",
                                       "train.noise_correction=0.2"))
    assert trainer.step == 4 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_mesh_refuses_the_antisymmetric_decoder(cloth_dataset, tmp_path, small_config):
    config = small_config(cloth_dataset, tmp_path / "run", *MESH, "model.decoder=antisymmetric")
    with pytest.raises(GnsInputError, match="model.decoder"):
        MeshTask(config)


def test_wall_noise_refused_for_meshes(cloth_dataset, tmp_path, small_config):
    config = small_config(cloth_dataset, tmp_path / "run", *MESH, "train.wall_noise_std=1e-3")
    with pytest.raises(GnsInputError, match="train.wall_noise_std"):
        MeshTask(config)

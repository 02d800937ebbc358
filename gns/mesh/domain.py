"""The mesh domain's entry in the domain table (:mod:`gns.domains`)."""

from __future__ import annotations

from pathlib import Path

from gns.config import Config, refuse_particle_settings
from gns.data.mesh import MeshMetadata, is_mesh_dataset, load_mesh_metadata, open_mesh_split
from gns.errors import GnsInputError

__all__ = ["MESH", "MeshDomain"]


class MeshDomain:
    """Meshes (MeshGraphNets): the canonical mesh format (``docs/mesh_format.md``), :class:`MeshSimulator`."""

    kind = "mesh"

    def is_dataset(self, path: Path) -> bool:
        return is_mesh_dataset(path)

    def load_metadata(self, dataset: str | Path) -> MeshMetadata:
        metadata = load_mesh_metadata(dataset)
        if metadata.varlen:
            raise GnsInputError("the mesh changes over time (remeshed, DeepMind dynamic_varlen); the mesh simulator "
                                "needs one mesh per trajectory", file=Path(dataset) / "metadata.json",
                                key="varlen", expected="[]", found=metadata.varlen)
        return metadata

    def metadata_from_dict(self, data: dict, source: object) -> MeshMetadata:
        return MeshMetadata.from_dict(data, source=source)

    def open_split(self, dataset: str | Path, split: str, metadata: MeshMetadata):
        return open_mesh_split(dataset, split, metadata)

    def open_split_for(self, simulator, dataset: str | Path, split: str):
        """Open a split of ``dataset`` (with its own metadata) for a trained simulator.

        The dataset may hold fields the simulator does not use (e.g. a wind field that a model
        trained without it ignores), but every field the simulator reads or predicts must be
        declared with the width and kind it was trained on, and the target and mesh dimension must agree.

        Raises:
            GnsInputError: naming the dataset's ``metadata.json`` and the key that disagrees.
        """
        metadata = load_mesh_metadata(dataset)
        source = Path(dataset) / "metadata.json"
        trained = simulator.metadata
        if metadata.target != trained.target:
            raise GnsInputError("the dataset's target differs from the model's", file=source, key="target",
                                expected=trained.target.to_dict(), found=metadata.target.to_dict())
        if metadata.mesh_dim != trained.mesh_dim:
            raise GnsInputError("the dataset's mesh dimension differs from the model's", file=source, key="mesh_dim",
                                expected=trained.mesh_dim, found=metadata.mesh_dim)
        for name in [*simulator.predicted_fields, *simulator.input_fields]:
            want, got = trained.fields[name], metadata.fields.get(name)
            if got != want:
                raise GnsInputError("a field the model uses is missing or different", file=source,
                                    key=f"fields/{name}", expected=want.to_dict(),
                                    found=None if got is None else got.to_dict())
        return open_mesh_split(dataset, split, metadata)

    def noise_settings(self, config: Config, metadata: MeshMetadata) -> tuple[float, float]:
        """The configured noise std and gamma, else MeshGraphNets' for the target's order."""
        from gns.mesh.simulator import noise_settings

        return noise_settings(metadata, config.train.noise_std, config.mesh.noise_gamma)

    def build_simulator(self, config: Config, metadata: MeshMetadata, noise_std: float | None):
        from gns.mesh.simulator import MeshSimulator

        refuse_particle_settings(config.model, "mesh")
        return MeshSimulator(config.model, config.mesh, metadata)

    def training_windows(self, simulator, split):
        from gns.mesh.windows import MeshWindows

        return MeshWindows.for_simulator(simulator, split)

    def structure(self, config: Config, metadata: dict) -> dict[str, dict]:
        """What a checkpoint must agree on to be resumed: model and mesh settings, fields and target."""
        mesh = ("world_edges", "world_edge_radius", "simulated_node_types", "use_inputs", "history")
        keys = ("mesh_dim", "fields", "target", "outputs", "inputs", "world_edge_radius")
        return {"model": dict(config.model.__dict__), "mesh": {k: getattr(config.mesh, k) for k in mesh},
                "metadata": {k: metadata.get(k) for k in keys}}

    def evaluation(self, simulator):
        from gns.mesh.evaluate import MeshEvaluation

        return MeshEvaluation(simulator)

    def horizons(self, config: Config) -> tuple[int, ...]:
        return config.mesh.horizons

    def render(self, rollout_file: str | Path, out: str | Path, *, trajectory: int | str | None = None,
               field: str | None = None, stride: int = 1, fps: int = 20, dataset: str | Path | None = None,
               progress: bool = True, dpi: int = 80) -> Path:
        """Animate a mesh rollout file (``gns render``): a cloth in 3D, or a field on a 2D mesh."""
        from gns.mesh.viz import render_mesh_rollout

        return render_mesh_rollout(rollout_file, out, trajectory=trajectory, field=field, every=stride, fps=fps,
                                   dpi=dpi)

    def intervention_space(self, simulator, dataset: str | Path):
        """What interventions may do to this model's meshes: nodes move only on Lagrangian meshes;
        node types are the declared ones; input fields stay within the training split's range
        (per component, over every node and every tenth frame); free nodes stay out of obstacles."""
        import numpy as np
        import torch

        from gns.interventions import Space
        from gns.mesh.types import NodeType

        metadata = simulator.metadata
        ranges = {}
        if simulator.input_fields:
            with open_mesh_split(dataset, "train", load_mesh_metadata(dataset)) as train:
                for name in simulator.input_fields:
                    values = []
                    for i in range(len(train)):
                        if metadata.fields[name].dynamic:
                            frames = train.num_frames(i)
                            data = train.read_window(i, 0, frames, fields=[name]).fields[name][::10]
                        else:
                            data = train.read_window(i, 0, 1, fields=[]).static_fields[name]
                        flat = np.asarray(data, dtype=np.float64).reshape(-1, metadata.fields[name].dim)
                        values.append(np.stack([flat.min(0), flat.max(0)]))
                    stacked = np.stack(values)                                              # (T, 2, F)
                    ranges[name] = (stacked[:, 0].min(0), stacked[:, 1].max(0))
        declared = {int(v) for v in metadata.node_types.values()} if metadata.node_types else None
        simulated = {int(t) for t in simulator.mesh_config.simulated_node_types}

        def obstacles(state) -> list[tuple[torch.Tensor, float]]:
            """Each mesh's OBSTACLE nodes as a ball: their centroid and farthest distance from it."""
            if not simulator.lagrangian:
                return []
            out = []
            for system in state.split():
                mask = system.node_type == int(NodeType.OBSTACLE)
                if bool(mask.any()):
                    points = system.fields[simulator.target_field][mask, -1]
                    center = points.mean(0)
                    out.append((center, float((points - center).norm(dim=1).max())))
            return out

        return Space(kind=self.kind, dt=float(metadata.dt), type_attribute="node_type", held=simulator.held,
                     position_field=simulator.target_field if simulator.lagrangian else None, coordinates="mesh_pos",
                     input_fields=list(simulator.input_fields), trained_types=declared,
                     held_types=(declared or set(range(9))) - simulated, ranges=ranges, obstacles=obstacles)

    def default_regions(self, simulator) -> dict:
        """No occupancy regions by default (a mesh keeps its nodes)."""
        return {}

    def resimulator(self, simulator, dataset: str | Path, split: str, index: int, start: int):
        """The reference solver that made ``dataset``, restarted at frame ``start`` of trajectory ``index``.

        Raises:
            GnsInputError: no built-in solver that can restart made this dataset.
        """
        from gns.solvers.common import SPLITS

        metadata = load_mesh_metadata(dataset)
        generator = metadata.generator or {}
        solver = str(generator.get("solver", ""))
        if not solver.startswith("gns.solvers.cloth"):
            raise GnsInputError("no built-in solver can re-simulate this dataset from a state (the cloth solver "
                                "can; the flow solver cannot restart yet)", file=Path(dataset) / "metadata.json",
                                key="generator/solver", expected="gns.solvers.cloth", found=solver or None)
        from gns.solvers.cloth import ClothReplay

        with open_mesh_split(dataset, split, metadata) as trajectories:
            check = trajectories.read_window(index, start, start + 1, fields=["world_pos"]).fields["world_pos"][0]
        return ClothReplay.from_generator(generator, SPLITS.index(split), index, start, check=check)


MESH = MeshDomain()

"""The mesh domain's entry in the domain table (:mod:`gns.domains`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gns.config import Config
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

    def render(self, rollout_file: str | Path, out: str | Path, **options: Any) -> Path:
        from gns.mesh.viz import render_mesh_rollout

        return render_mesh_rollout(rollout_file, out, **options)


MESH = MeshDomain()

"""The particle domain's entry in the domain table (:mod:`gns.domains`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gns.config import Config
from gns.data import DatasetMetadata, load_metadata, open_split
from gns.train.noise import default_noise_std

__all__ = ["PARTICLES", "ParticleDomain"]


class ParticleDomain:
    """Particles (GNS): datasets in the DeepMind/LagrangeBench layout, :class:`ParticleSimulator`."""

    kind = "particles"

    def is_dataset(self, path: Path) -> bool:
        return (Path(path) / "metadata.json").exists()

    def load_metadata(self, dataset: str | Path) -> DatasetMetadata:
        return load_metadata(dataset)

    def metadata_from_dict(self, data: dict, source: object) -> DatasetMetadata:
        return DatasetMetadata.from_dict(data, source=source)

    def open_split(self, dataset: str | Path, split: str, metadata: DatasetMetadata):
        return open_split(dataset, split, metadata)

    def open_split_for(self, simulator, dataset: str | Path, split: str):
        return open_split(dataset, split, simulator.metadata)

    def noise_settings(self, config: Config, metadata: DatasetMetadata) -> tuple[float, float]:
        """Random-walk noise std (the configured one, else scaled from WaterDrop's), and gamma 0
        (the target keeps all of the last input's noise, as in GNS)."""
        std = config.train.noise_std if config.train.noise_std is not None else default_noise_std(metadata.vel_std)
        return float(std), 0.0

    def build_simulator(self, config: Config, metadata: DatasetMetadata, noise_std: float | None):
        from gns.particles.simulator import ParticleSimulator

        noise = noise_std if noise_std is not None else default_noise_std(metadata.vel_std)
        return ParticleSimulator(config.model, metadata, noise)

    def training_windows(self, simulator, split):
        from gns.particles.windows import ParticleWindows

        return ParticleWindows(split, simulator.metadata.context_size)

    def structure(self, config: Config, metadata: dict) -> dict[str, dict]:
        """What a checkpoint must agree on to be resumed: the model settings and the box."""
        keys = ("dim", "bounds", "periodic_boundary_conditions", "num_particle_types", "context_size")
        return {"model": dict(config.model.__dict__), "metadata": {k: metadata.get(k) for k in keys}}

    def evaluation(self, simulator):
        from gns.particles.evaluate import ParticleEvaluation

        return ParticleEvaluation(simulator)

    def horizons(self, config: Config) -> tuple[int, ...]:
        return config.eval.horizons

    def render(self, rollout_file: str | Path, out: str | Path, **options: Any) -> Path:
        from gns.particles.viz import render_file

        return render_file(rollout_file, out, **options)


PARTICLES = ParticleDomain()

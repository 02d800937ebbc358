"""The particle domain's entry in the domain table (:mod:`gns.domains`)."""

from __future__ import annotations

from pathlib import Path

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
        return ParticleSimulator(config.model, metadata, noise, wall_noise_std=config.train.wall_noise_std)

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

    def render(self, rollout_file: str | Path, out: str | Path, *, trajectory: int | str | None = None,
               field: str | None = None, stride: int = 2, fps: int = 20, dataset: str | Path | None = None,
               progress: bool = True, dpi: int = 80) -> Path:
        """Animate a particle rollout file (``gns render``): the box from ``dataset`` when given, else the file's."""
        from gns.particles.viz import render_file

        bounds = load_metadata(dataset).bounds if dataset else None
        return render_file(rollout_file, out, trajectory=trajectory, stride=stride, fps=fps, bounds=bounds,
                           progress=progress, dpi=dpi)

    def intervention_space(self, simulator, dataset: str | Path):
        """What interventions may do to this model's particles: the walls, the particle types and
        context range of the training split, and a speed beyond the training data (mean + 6 std
        of the per-step velocity, per second)."""
        import numpy as np

        from gns.interventions import Space, speed_limit

        metadata = simulator.metadata
        with open_split(dataset, "train", metadata) as train:
            types = {int(t) for i in range(len(train)) for t in np.unique(train.particle_type(i))}
            contexts = [np.asarray(train.context(i), dtype=np.float64).reshape(-1) for i in range(len(train))
                        if metadata.context_size and train.context(i) is not None]
        ranges = {}
        if contexts:
            stacked = np.stack(contexts)
            ranges["context"] = (stacked.min(0), stacked.max(0))
        dt = float(metadata.dt or 1.0)
        speed = speed_limit(metadata.vel_mean, metadata.vel_std, dt)
        return Space(kind=self.kind, dt=dt, position_field="position", type_attribute="particle_type",
                     held=simulator.held, bounds=simulator.bounds.detach().cpu(),
                     periodic=simulator.periodic.detach().cpu(), trained_types=types,
                     held_types={int(t) for t in metadata.kinematic_particle_types},
                     context_size=metadata.context_size, ranges=ranges, max_speed=speed, entity="particle")

    def default_regions(self, simulator) -> dict:
        """Occupancy regions reported by default: the left and right halves of the box."""
        from gns.interventions import box_halves

        return box_halves(simulator.bounds)

    def resimulator(self, simulator, dataset: str | Path, split: str, index: int, start: int):
        """The reference solver that made ``dataset``, restarted at frame ``start`` of trajectory ``index``.

        Raises:
            GnsInputError: no built-in solver made this dataset.
        """
        from gns.solvers.common import SPLITS
        from gns.solvers.water2d import Water2DReplay, dataset_config

        config = dataset_config(dataset)
        metadata = load_metadata(dataset)
        with open_split(dataset, split, metadata) as trajectories:
            check = trajectories.read_window(index, start, start + 1)[0]
        return Water2DReplay(config, SPLITS.index(split), index, start, check=check)


PARTICLES = ParticleDomain()

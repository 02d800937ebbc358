"""The object domain's entry in the domain table (:mod:`gns.domains`)."""

from __future__ import annotations

from pathlib import Path

from gns.config import Config, refuse_particle_settings
from gns.data.objects import ObjectMetadata, is_object_dataset, load_object_metadata, open_object_split
from gns.errors import GnsInputError

__all__ = ["OBJECTS", "ObjectDomain"]


class ObjectDomain:
    """Rigid objects in a box: the object format (``docs/objects.md``), :class:`ObjectSimulator`."""

    kind = "objects"

    def is_dataset(self, path: Path) -> bool:
        return is_object_dataset(path)

    def load_metadata(self, dataset: str | Path) -> ObjectMetadata:
        return load_object_metadata(dataset)

    def metadata_from_dict(self, data: dict, source: object) -> ObjectMetadata:
        return ObjectMetadata.from_dict(data, source=source)

    def open_split(self, dataset: str | Path, split: str, metadata: ObjectMetadata):
        return open_object_split(dataset, split, metadata)

    def open_split_for(self, simulator, dataset: str | Path, split: str):
        """Open a split of ``dataset`` for a trained simulator: the box, the time step and the shape
        codes must be the ones it was trained on.

        Raises:
            GnsInputError: naming the dataset's ``metadata.json`` and the key that differs.
        """
        metadata = load_object_metadata(dataset)
        trained = simulator.metadata
        for key in ("bounds", "dt", "shape_kinds"):
            if getattr(metadata, key) != getattr(trained, key):
                raise GnsInputError("the dataset differs from the one the model was trained on",
                                    file=Path(dataset) / "metadata.json", key=key, expected=getattr(trained, key),
                                    found=getattr(metadata, key))
        return open_object_split(dataset, split, metadata)

    def noise_settings(self, config: Config, metadata: ObjectMetadata) -> tuple[float, float]:
        """Random-walk noise std on the last linear per-step velocity (``train.noise_std``, else
        ``objects.noise_share`` of the mean velocity std), and gamma 0 (GNS: the target keeps the
        last input's noise, so the model learns to correct the noisy velocity)."""
        if config.train.noise_std is not None:
            return float(config.train.noise_std), 0.0
        vel_std = (metadata.statistics or {}).get("vel_std")
        if not vel_std:
            raise GnsInputError("object metadata lacks velocity statistics", key="statistics/vel_std",
                                expected="the per-step velocity std of the train split", found=None)
        return float(config.objects.noise_share * sum(vel_std) / len(vel_std)), 0.0

    def build_simulator(self, config: Config, metadata: ObjectMetadata, noise_std: float | None):
        from gns.objects.simulator import ObjectSimulator

        refuse_particle_settings(config.model, "objects")
        noise = noise_std if noise_std is not None else self.noise_settings(config, metadata)[0]
        return ObjectSimulator(config.model, config.objects, metadata, noise)

    def training_windows(self, simulator, split):
        from gns.objects.windows import ObjectWindows

        return ObjectWindows(split, simulator.object_config.impact_fraction, simulator.obstacles)

    def structure(self, config: Config, metadata: dict) -> dict[str, dict]:
        """What a checkpoint must agree on to be resumed: the model and object settings, the box,
        the time step and the shape codes."""
        keys = ("bounds", "dt", "shape_kinds")
        return {"model": dict(config.model.__dict__), "objects": dict(config.objects.__dict__),
                "metadata": {k: metadata.get(k) for k in keys}}

    def evaluation(self, simulator):
        from gns.objects.evaluate import ObjectEvaluation

        return ObjectEvaluation(simulator)

    def horizons(self, config: Config) -> tuple[int, ...]:
        return config.eval.horizons

    def render(self, rollout_file: str | Path, out: str | Path, *, trajectory: int | str | None = None,
               field: str | None = None, stride: int = 1, fps: int = 20, dataset: str | Path | None = None,
               progress: bool = True, dpi: int = 80) -> Path:
        """Animate an object rollout file (``gns render``): every object drawn as its shape in its colour."""
        from gns.objects.viz import render_object_rollout

        return render_object_rollout(rollout_file, out, trajectory=trajectory, stride=stride, fps=fps,
                                     progress=progress, dpi=dpi)

    def intervention_space(self, simulator, dataset: str | Path):
        """What interventions may do to this model's scenes (:func:`gns.objects.interventions.object_space`): the
        shared operations, ``resize`` and ``reweigh``, ``set_input`` on the actions; shapes checked against
        overlaps and the walls; changes within the train split's actions, sizes, masses, moments and speeds."""
        from gns.objects.interventions import object_space

        return object_space(simulator, dataset)

    def default_regions(self, simulator) -> dict:
        """Occupancy regions reported by default: the left and right halves of the box."""
        from gns.objects.interventions import default_regions

        return default_regions(simulator)

    def resimulator(self, simulator, dataset: str | Path, split: str, index: int, start: int):
        """The pymunk solver restarted at frame ``start`` of trajectory ``index`` (:class:`ObjectReplay`).

        Raises:
            GnsInputError: the dataset was not made by the Objects2D solver (or by another version of it).
            ImportError: pymunk is not installed.
        """
        from gns.solvers.objects2d import ObjectReplay

        return ObjectReplay.from_dataset(dataset, split, index, start)


OBJECTS = ObjectDomain()

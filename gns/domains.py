"""The domain table: kind -> the domain's state, simulator, task, evaluation and rendering.

Every part of gns that is not about one domain (the CLI, the evaluator, checkpoint loading,
counterfactual queries) finds the domain of a dataset, a checkpoint, a simulator or a rollout
file here, and calls the same few methods on it (:class:`Domain`). Domains are imported on
first use, so this module imports none of them, and adding a domain is one line of
:data:`DOMAINS` plus its folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch

from gns.errors import GnsInputError

__all__ = ["Domain", "DOMAINS", "get_domain", "domain_for_dataset", "evaluation_for", "load_simulator", "load_weights",
           "open_split_for", "resolve_device"]

# kind -> "module:attribute" of the domain's descriptor. Datasets are recognised in this order
# (the particle layout is the fallback, its metadata.json having no distinguishing key).
DOMAINS = {
    "mesh": "gns.mesh.domain:MESH",
    "objects": "gns.objects.domain:OBJECTS",
    "particles": "gns.particles.domain:PARTICLES",
}


class Domain(Protocol):
    """What a domain provides to the shared core (see ``gns/particles/domain.py`` for one).

    Its data (metadata, splits), its simulator (built from a config, rebuilt from a checkpoint),
    its training windows and noise, what a resumed checkpoint must agree on, its evaluation
    (:class:`gns.evaluate.Evaluation`), its renderer, and for counterfactual queries the
    :class:`gns.interventions.Space` of a trained model, default occupancy regions, and the
    reference solver restarted at a frame (a :class:`gns.solvers.common.Replayer`).

    Attributes:
        kind: its name in :data:`DOMAINS`, in checkpoints (``kind``) and in rollout files (``simulator``).
    """

    kind: str

    def is_dataset(self, path: Path) -> bool: ...
    def load_metadata(self, dataset: str | Path) -> Any: ...
    def metadata_from_dict(self, data: dict, source: object) -> Any: ...
    def open_split(self, dataset: str | Path, split: str, metadata: Any) -> Any: ...
    def open_split_for(self, simulator: Any, dataset: str | Path, split: str) -> Any: ...
    def noise_settings(self, config: Any, metadata: Any) -> tuple[float, float]: ...
    def build_simulator(self, config: Any, metadata: Any, noise_std: float) -> torch.nn.Module: ...
    def training_windows(self, simulator: Any, split: Any) -> Any: ...
    def structure(self, config: Any, metadata: dict) -> dict[str, dict]: ...
    def evaluation(self, simulator: Any) -> Any: ...
    def horizons(self, config: Any) -> tuple[int, ...]: ...
    def intervention_space(self, simulator: Any, dataset: str | Path) -> Any: ...
    def default_regions(self, simulator: Any) -> dict: ...
    def resimulator(self, simulator: Any, dataset: str | Path, split: str, index: int, start: int) -> Any: ...
    def render(self, rollout_file: str | Path, out: str | Path, *, trajectory: int | str | None = None,
               field: str | None = None, stride: int = 1, fps: int = 20, dataset: str | Path | None = None,
               progress: bool = True, dpi: int = 80) -> Path: ...


def get_domain(kind: str) -> Domain:
    """The descriptor of domain ``kind``.

    Raises:
        GnsInputError: an unknown kind (the known ones listed).
    """
    if kind not in DOMAINS:
        raise GnsInputError("unknown domain", key="kind", expected=sorted(DOMAINS), found=kind)
    module, attribute = DOMAINS[kind].split(":")
    return getattr(importlib.import_module(module), attribute)


def domain_for_dataset(dataset: str | Path) -> Domain:
    """The domain of a dataset directory (read from its ``metadata.json``)."""
    path = Path(dataset)
    for kind in DOMAINS:
        domain = get_domain(kind)
        if domain.is_dataset(path):
            return domain
    raise GnsInputError("not a dataset directory", file=path / "metadata.json",
                        expected="metadata.json of a particle, mesh or object dataset", found="nothing")


def evaluation_for(simulator: Any):
    """The :class:`gns.evaluate.Evaluation` of a trained simulator of any domain."""
    return get_domain(simulator.kind).evaluation(simulator)


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else as given."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_simulator(checkpoint: str | Path, device: str | torch.device = "cpu", kind: str | None = None
                   ) -> tuple[torch.nn.Module, Any, Any]:
    """Rebuild a trained simulator of any domain from its checkpoint alone (config and metadata travel inside).

    Args:
        checkpoint: a ``.pt`` file, or a run directory (its ``checkpoints/latest.pt``).
        device: where to put it (``"auto"``: cuda when available).
        kind: refuse a checkpoint of another domain.

    Returns:
        ``(simulator, config, metadata)``, the simulator in eval mode.
    """
    from gns.config import config_from_dict
    from gns.train.checkpoint import load_checkpoint

    device = resolve_device(device)
    state = load_checkpoint(checkpoint, map_location=device)
    found = state.get("kind", "particles")  # gns 0.1 particle checkpoints carry no kind
    if kind is not None and found != kind:
        raise GnsInputError(f"not a {kind} checkpoint", file=checkpoint, key="kind", expected=kind, found=found)
    domain = get_domain(found)
    config = config_from_dict(state["config"])
    metadata = domain.metadata_from_dict(state["metadata"], checkpoint)
    simulator = domain.build_simulator(config, metadata, state.get("noise_std")).to(device)
    load_weights(simulator, state["model"], checkpoint)
    simulator.eval()
    return simulator, config, metadata


def load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], checkpoint: str | Path) -> None:
    """``model.load_state_dict(weights)``, with a clear error naming the checkpoint and the first tensors whose
    shapes differ (a checkpoint from another version of gns, or its config edited) instead of torch's traceback."""
    own = model.state_dict()
    wrong = [f"{k}: expected {tuple(own[k].shape)}, found {tuple(v.shape)}" for k, v in weights.items()
             if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if wrong or missing or extra:
        found = "; ".join(wrong[:3] + [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in extra[:3]])
        raise GnsInputError("the checkpoint's weights do not fit the model its config builds (made by another "
                            "version of gns, or its config edited)", file=checkpoint, key="model",
                            expected="the shapes of the rebuilt model", found=found)
    model.load_state_dict(weights)


def open_split_for(simulator: Any, dataset: str | Path, split: str) -> Any:
    """Open a split of ``dataset`` for a trained simulator (checked against what it was trained on)."""
    return get_domain(simulator.kind).open_split_for(simulator, dataset, split)

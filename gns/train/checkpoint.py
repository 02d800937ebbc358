"""Checkpoints: written atomically, loaded with clear errors, checked for compatibility."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from gns.atomic import atomic_path
from gns.errors import CheckpointMismatchError, GnsInputError

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, then rename.

    A crash mid-write leaves the previous checkpoint intact, never a truncated one.
    """
    path = Path(path)
    with atomic_path(path, fsync=True) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (a run folder loads its ``latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.exists():
        raise GnsInputError("checkpoint not found", file=path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise GnsInputError(f"cannot read checkpoint ({type(exc).__name__}: {exc})", file=path) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise GnsInputError("not a gns checkpoint", file=path, expected="keys model, config",
                            found=sorted(state) if isinstance(state, dict) else type(state).__name__)
    return state


# what load_simulator needs of a checkpoint (weights, how to build the model, the data's statistics), and the step
MODEL_KEYS = ("model", "config", "metadata", "noise_std", "noise_gamma", "kind", "step")


def release_checkpoint(src: str | Path, dst: str | Path, made_by: str,
                       model_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a model-only copy of a training checkpoint, to ship or share: no optimizer, scheduler or RNG state.

    Args:
        src: a checkpoint written by training (or a run folder: its ``latest.pt``).
        dst: the ``.pt`` file to write (atomically).
        made_by: how the source checkpoint was made (the command), kept in the file as ``made_by``.
        model_settings: ``model`` config fields to change in the copy, for settings without weights of their own
            (``mirror_average``); the caller checks them. The copy records them as ``released_with``.

    Returns:
        what was written (``gns.domains.load_simulator`` loads it like the source).
    """
    state = load_checkpoint(src)   # refuses a file without weights or config
    if "metadata" not in state:
        raise GnsInputError("checkpoint lacks the dataset statistics a simulator is built from", file=src,
                            key="metadata", expected="model, config, metadata", found=sorted(state))
    released = {k: state[k] for k in MODEL_KEYS if k in state}
    if model_settings:
        unknown = sorted(set(model_settings) - set(released["config"].get("model", {})))
        if unknown:
            raise GnsInputError("no such model setting in the checkpoint's config", file=src, key="config.model",
                                expected=sorted(released["config"].get("model", {})), found=unknown)
        released["config"] = {**released["config"], "model": {**released["config"]["model"], **model_settings}}
        released["released_with"] = dict(model_settings)
    released["made_by"] = made_by
    released["released_from"] = Path(src).name
    save_checkpoint(dst, released)
    return released


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: str | Path, what: str) -> None:
    """Raise :class:`CheckpointMismatchError` listing every key where ``saved`` and ``current`` differ."""
    diffs = [f"{what}.{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        raise CheckpointMismatchError("checkpoint was written by an incompatible configuration:\n  "
                                      + "\n  ".join(diffs), file=path)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

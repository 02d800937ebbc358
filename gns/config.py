"""One source of defaults.

Every default of the toolkit lives in the frozen dataclasses below, with a comment on each
field. A YAML file and ``--set section.key=value`` command-line overrides only *override*
them (:func:`load_config`); unknown keys are an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from gns.errors import GnsInputError

# GNS (Sanchez-Gonzalez et al. 2020) used noise_std = 6.7e-4 on WaterDrop, whose mean
# per-step velocity std is 1.355e-3 (metadata vel_std [1.397e-3, 1.313e-3]). With
# ``noise_std=None`` we keep that ratio on any dataset: noise = 0.494 * mean(vel_std).
WATERDROP_NOISE_STD = 6.7e-4
WATERDROP_MEAN_VEL_STD = 1.355e-3


@dataclass(frozen=True)
class ModelConfig:
    history: int = 5                   # C: number of past velocities in the node features
    # how the C velocities enter the node features: "velocities" (GNS: each normalized by the velocity
    # statistics) or "differences" (the last velocity, then the C-1 per-step velocity changes normalized
    # by the acceleration statistics: the same information, but the changes, ~10x smaller than the
    # velocities, arrive at unit scale instead of as small differences of large inputs)
    # "near_walls": the C-1 changes as in "differences", and the last velocity only where a wall is within one
    # radius (scaled by 1 - distance / radius), so that away from walls a particle's inputs are the same whatever
    # the common velocity of its neighbourhood (pair with edge_velocity, which gives the relative motion)
    velocity_encoding: str = "velocities"
    # edges also carry the relative velocity of their two particles, (v_sender - v_receiver) / vel_std (last
    # step; GNS: off, edges see only the displacement): the quantity that viscosity and pressure act on, and the
    # same whatever the common velocity of the two particles (a falling block, a sliding layer)
    edge_velocity: bool = False
    # particles: also give each particle its place in the box, (x - lo) / (hi - lo) * 2 - 1 per non-periodic
    # dimension, unclipped (GNS: only the wall distances, clipped at one radius). Within a few message-passing
    # steps the inside of a block in flight looks like the inside of a resting pool; its height tells them apart
    box_position: bool = False
    # particles: if positive, static wall particles at this spacing (m; the fluid's rest spacing) fill one radius
    # behind every non-periodic wall, and message passing sees them as neighbours (their own type, zero velocity,
    # edges both ways; no loss, no noise, never written to a rollout): a particle at a wall then has a full
    # neighbourhood like one in the bulk, as with the boundary particles of SPH data (LagrangeBench). 0: the walls
    # are only the distance features (GNS)
    wall_spacing: float = 0.0
    # particles: average the network's predicted acceleration over the reflections of the box about its centre
    # along these dimensions (all 2^k combinations, each reflected back): the model is then exactly
    # mirror-equivariant there, so it cannot push water towards one wall by a preference of its own. No weights;
    # costs 2^k network passes (one batch). Only for dimensions gravity is perpendicular to; may be set on a trained
    # model at evaluation (`gns evaluate --mirror-average 0`). (): off (GNS)
    mirror_average: tuple[int, ...] = ()
    # False: train the network plain (one pass a step: half the cost) and average only where the model predicts
    # outside training (eval mode: evaluation, rollouts, counterfactuals, validation), as a trained model
    # given `--mirror-average` is. True: training averages too
    mirror_average_in_training: bool = True
    # how the network's output is read: "node" (GNS: an MLP of each node's final latent) or "antisymmetric"
    # (particles: a term of each particle's own inputs plus a sum of pair terms over its neighbours with
    # f_ij = -f_ji, so that what particles do to each other cannot accelerate a group as a whole: internal
    # forces conserve momentum; gns/nn/encode_process_decode.py) or "gated_antisymmetric" (particles: the
    # same pair terms, one learned acceleration shared by every particle, and a term of each particle's
    # processed latent only within one radius of a wall: away from walls a group's mean acceleration is
    # that shared one, whatever its inputs)
    decoder: str = "node"
    # the gated antisymmetric decoder's shared acceleration: "learned" (one parameter) or "gravity" (particles:
    # the dataset's metadata.gravity, fixed: water away from walls falls at exactly g as a group, whatever the
    # network reads from its own history, and a resting pool must be held up by the pair terms and the walls)
    body_force: str = "learned"
    latent_size: int = 128             # width of node/edge latents (GNS: 128)
    message_passing_steps: int = 10    # processor blocks, unshared weights (GNS: 10)
    hidden_layers: int = 2             # hidden layers per MLP (GNS: 2)
    type_embedding_size: int = 16      # learned particle-type embedding (GNS: 16)
    radius: float | None = None        # connectivity radius; None: the dataset's default_connectivity_radius
    self_loops: bool = True            # keep i->i edges, as DeepMind's KD-tree query does


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000                # optimizer steps
    batch_size: int = 2                # trajectory windows (graphs) per step and rank: under torchrun every rank draws
                                       # its own, so a step's global batch is world_size x batch_size
    lr_init: float = 1e-4              # GNS: 1e-4 decaying to 1e-6
    lr_final: float = 1e-6
    lr_decay: float = 0.1              # lr = final + (init - final) * decay ** (step / lr_decay_steps)
    lr_decay_steps: int = 100_000      # GNS: 5e6 at 20M steps; scaled to our shorter runs
    grad_clip: float = 1.0             # max global gradient norm (0 disables)
    ema_decay: float = 0.0             # > 0: validation, best.pt and every checkpoint's weights are their exponential
                                       # moving average, decay min(ema_decay, (1+n)/(10+n)) after n steps
                                       # (gns/train/averaging.py): 0.999 is reached at step ~9000 (then about the last
                                       # 1000 steps); before, the average centres on the last ~10% of the run, whatever
                                       # the decay. Training continues from the raw weights. 0: off
    noise_std: float | None = None     # particles: random-walk noise std on the last velocity, None: scaled from
                                       # WaterDrop; meshes: noise std on the target field, None: 3e-3 for
                                       # positions (order 2, MeshGraphNets cloth), 2e-2 otherwise (cylinder flow)
    wall_noise_std: float | None = None  # particles: the random walk's std for particles at a wall, blended into
                                       # noise_std over one radius from it (the nearness of the near-walls inputs);
                                       # None: noise_std everywhere
    noise_correction: float = 1.0      # second-order targets (particles, cloth): share of the last input velocity's
                                       # noise the one-step target asks the model to remove. 1: GNS (the next
                                       # velocity is fully corrected); 0: noise only perturbs the inputs
    offset_noise_std: float = 0.0      # std of a constant offset per entity added to the whole input window of the
                                       # target field (positions): the velocities stay clean; 0: none
    offset_restore: float = 0.1        # share of that offset the one-step target asks the model to remove, so that
                                       # it learns to move a configuration that drifted back towards the data's
    velocity_offset_std: float = 0.0   # second-order targets: std of a constant velocity error per entity over the
                                       # whole input window (frame k of w moved by (k + 1) times it: the velocity
                                       # changes stay clean, every velocity is off by it), which the one-step target
                                       # asks the model to remove as it does the random walk's; 0: none
    loss: str = "onestep"              # "onestep" | "pushforward" | "bptt"
    # pushforward (LagrangeBench): from step pushforward_steps[i] on, unroll pushforward_unrolls[i] may be drawn,
    # with relative probability pushforward_probs[i]; the unroll runs without gradient, the loss is on the last step.
    pushforward_steps: tuple[int, ...] = (0, 2_000, 30_000, 40_000)
    pushforward_unrolls: tuple[int, ...] = (0, 1, 2, 3)
    pushforward_probs: tuple[float, ...] = (18.0, 2.0, 1.0, 1.0)
    bptt_steps: int = 3                # "bptt": steps unrolled with full backprop, loss averaged over them
    seed: int = 0                      # model init, batch sampling, noise: all derived from (seed, step, rank)
    log_every: int = 50                # steps between CSV log rows
    eval_every: int = 1_000            # steps between validations (and "best" checkpoints)
    checkpoint_every: int = 1_000      # steps between "latest" checkpoints
    early_frames: int = 0              # with early_fraction > 0: windows starting in a trajectory's first N frames...
    early_fraction: float = 0.0        # ...make up this share of the training windows (0: every window equally likely)
    # particles: this share of the training windows end on an impact, a step where some particle accelerates by
    # more than impact_threshold training stds in a dimension (water hitting a wall: 9% of the default water set's
    # steps at 6, its impacts 30-80 g against gravity's 0.6 std); objects: objects.impact_fraction
    impact_fraction: float = 0.0
    impact_threshold: float = 6.0
    # particles: each training window is reflected about the box's centre along these dimensions with probability
    # 1/2 (one draw per window), for data whose physics is mirror-symmetric there (gravity perpendicular to them,
    # symmetric walls): twice the data, and no left/right preference the training set's own draw happens to carry
    mirror_dims: tuple[int, ...] = ()
    valid_windows: int = 64            # fixed one-step validation windows
    valid_rollouts: int = 2            # validation trajectories rolled out
    valid_rollout_steps: int = 50      # steps per validation rollout (0: each trajectory to its end)
    num_threads: int = 0               # torch CPU threads of each rank (0: torch's default)
    time_budget_s: float = 0.0         # stop (and checkpoint) once training has run this long; 0: no limit
    backend: str = "auto"              # torch.distributed backend under torchrun: "auto" (nccl on GPUs, gloo on
                                       # CPUs), "nccl" or "gloo" (gns/train/distributed.py)
    # how the network computes (gns/nn/execution.py; none changes a parameter; measured in docs/benchmarks.md):
    precision: str = "fp32"            # "fp32" or "bf16": the network's forward (and so its backward) under bf16
                                       # autocast; losses, targets and integration stay float32. Refused on
                                       # hardware without native bf16 (emulated it is slower than fp32)
    checkpoint_processor: bool = False  # recompute each message-passing block in the backward instead of keeping
                                       # its activations: the memory of one block instead of all, for ~1 more
                                       # forward pass of the processor (graphs that do not fit in memory)
    compile: bool = False              # torch.compile(dynamic=True) of the network: one graph for every graph
                                       # size; costs a compilation (about a minute on a CPU) at the first step


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"                                   # split evaluated by `gns evaluate`
    horizons: tuple[int, ...] = (1, 5, 10, 20, 50, 100)   # rollout steps at which position MSE is reported
    max_trajectories: int | None = None                   # None: every trajectory of the split
    batch_trajectories: int = 4                           # trajectories rolled out together as one batch
    start_stride: int = 100                               # also score rollouts started every this many frames (0: off)
    precision: str = "fp32"                               # "fp32" or "bf16": the network's forward in evaluations and
                                                          # rollouts (as train.precision; `gns evaluate --precision`)


@dataclass(frozen=True)
class MeshConfig:
    """Settings of the mesh simulator (MeshGraphNets, Pfaff et al. 2020); ignored for particle datasets."""
    world_edges: bool = True           # add world-space proximity edges (Lagrangian meshes, e.g. cloth, only)
    world_edge_radius: float | None = None   # None: the dataset's world_edge_radius (no world edges if it has none)
    noise_gamma: float | None = None   # share of the last input frame's noise the target removes (the rest it keeps);
                                       # None: 0.1 (order 2), 1.0 (order 1)
    simulated_node_types: tuple[int, ...] = (0, 5)   # NORMAL, OUTFLOW: nodes the model integrates and is scored on
    noisy_node_types: tuple[int, ...] = (0,)         # NORMAL: nodes whose inputs get training noise (as MeshGraphNets)
    use_inputs: bool = True            # feed the dataset's declared input fields (metadata "inputs", cloth: wind) as node features
    history: int = 1                   # past velocities (order 2) or frames (order 1) each node reads; MeshGraphNets: 1
    strain_features: bool = False      # Lagrangian meshes (cloth): mesh edges also carry their strain, world length over
                                       # rest (mesh-space) length minus 1, alone and along the world direction (the pull
                                       # of a spring of that strain); MeshGraphNets: the two lengths only
    max_accumulations: int = 1_000_000  # online normalizers stop accumulating after this many training batches
    horizons: tuple[int, ...] = (1, 10, 20, 50, 100, 200)  # rollout steps at which RMSE is reported
    # a named projection, never a default (gns/mesh/constraints.py): after every rollout step, mesh edges longer
    # than strain_limit times their rest length are shortened to it by moving their movable nodes (Lagrangian
    # meshes; `gns evaluate --strain-limit`); rollouts only, training is untouched; None: off
    strain_limit: float | None = None
    # the most sweeps over the edges of that projection per step; it stops earlier once no edge is over the limit by
    # more than 0.1% of its rest length. 50 left a sheet of the cloth_long preset at 1.19 where 1.1 was asked (it
    # needed 186 sweeps on its worst step, at no measurable cost over the rollout: docs/results.md)
    strain_limit_iterations: int = 500


@dataclass(frozen=True)
class ObjectConfig:
    """Settings of the object simulator (rigid objects in a box, an interaction network on the shared
    encode-process-decode); ignored for particle and mesh datasets."""
    history: int = 2                   # C: past per-step velocities (linear and angular) each object reads
    edges: str = "all"                 # "all": every ordered pair of objects in a scene (Interaction Networks);
                                       # "radius": pairs whose centres are at most `radius` apart
    radius: float = 0.3                # m: the edge radius of edges="radius"; also the length scale of the edge
                                       # features (positions, distances, gaps) and of the wall gaps (clipped at it)
    contact_scale: float = 0.0         # m: if positive, the pair and wall gaps are given a second time over this
                                       # length, clipped to [-1, 1], so that the millimetres that decide a contact
                                       # are resolved (the objects preset: 0.02, two frames' travel); 0: the gaps
                                       # over `radius` only (as checkpoints made before this setting existed)
    edge_frame: str = "receiver"       # edge vectors (relative position, velocity) "receiver": turned into the
                                       # receiver's frame; "world": as they are, the frame of the predicted accelerations
    approach: bool = False             # pair edges also carry how fast the two centres close in and the share of
                                       # the next step left after the shapes would meet (geometry, not a force)
    impact: bool = False               # pair edges also carry the contact frame (normal, contact point), the closing
                                       # speed at the contact point and the velocity and spin change a frictionless
                                       # impact would give the receiver (gns.objects.features.impact_features)
    obstacles: bool = False            # a third edge set from each static obstacle of a scene to each object
                                       # (gns.objects.features.obstacle_features); needed for scenes with
                                       # obstacles, which a model without it refuses; off: none (no parameters)
    impact_fraction: float = 0.0       # share of training windows whose scored step holds an impact (an object
                                       # starts touching another, by the solver's contact record): a few percent
                                       # of uniform windows; 0: uniform
    noise_share: float = 0.05          # training noise when train.noise_std is None: random-walk std on the last
                                       # linear and angular per-step velocity, as this share of the data's velocity
                                       # std of each (train.noise_std sets the linear std; the angular std keeps the
                                       # ratio of the two velocity stds)


@dataclass(frozen=True)
class Config:
    dataset: str = "datasets/water2d"  # canonical dataset directory
    out_dir: str = "runs/water2d"      # checkpoints, logs, rollouts
    device: str = "auto"               # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    objects: ObjectConfig = field(default_factory=ObjectConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x


def _parse_scalar(text: str) -> Any:
    """A command-line/YAML string as int, float (``3e-3`` included, which YAML 1.1 leaves a string) or YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def coerce_value(value: Any, current: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the type of the default it overrides (``where`` names it in errors)."""
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value if value.startswith("[") else f"[{value}]")
        if not isinstance(value, (list, tuple)):
            raise GnsInputError("expected a list", key=where, found=repr(value))
        return tuple(value)
    if isinstance(value, str) and not isinstance(current, str):
        value = _parse_scalar(value)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise GnsInputError("expected true/false", key=where, found=repr(value))
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if current is not None and value is not None and not isinstance(value, type(current)):
        raise GnsInputError("wrong type", key=where, expected=type(current).__name__, found=repr(value))
    return value


def _apply(obj: Any, updates: dict[str, Any], prefix: str, source: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in updates.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise GnsInputError(f"unknown setting (known: {', '.join(sorted(names))})", file=source, key=where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise GnsInputError("expected a mapping", file=source, key=where, found=repr(value))
            changes[key] = _apply(current, value, f"{where}.", source)
        else:
            changes[key] = coerce_value(value, current, where)
    return dataclasses.replace(obj, **changes)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=100", "model.latent_size=64"]`` -> nested dict of strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise GnsInputError("override must look like section.key=value", found=repr(item))
        path, value = item.split("=", 1)
        node = out
        parts = path.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


# The key of a config file that names the file it builds on (a shipped preset's name, or a path relative to it).
EXTENDS = "extends"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), base: Config | None = None) -> Config:
    """Defaults (or ``base``), then the YAML file at ``path`` (may be partial), then ``overrides``.

    A file may build on another: ``extends: flow`` (a shipped preset) or ``extends: ../my_base.yaml`` (a
    path relative to the file, ending in ``.yaml`` or ``.yml``) loads that one first, then this file's settings over it; nested sections
    merge key by key, so a longer recipe states only what it changes.
    """
    config = base or Config()
    if path is not None:
        config = _load_file(Path(path), config, ())
    if overrides:
        config = _apply(config, parse_overrides(overrides), "", "command line")
    return config


def _load_file(path: Path, config: Config, chain: tuple[Path, ...]) -> Config:
    """``config`` with the file at ``path`` applied, after the files it extends (``chain``: the files that
    extend it, to refuse a circle)."""
    if not path.exists():
        raise GnsInputError("config file not found", file=chain[-1] if chain else path,
                            key=EXTENDS if chain else None, found=str(path))
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise GnsInputError("config must be a mapping", file=path, found=type(data).__name__)
    parent = data.pop(EXTENDS, None)
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise GnsInputError("expected a preset name or a path", file=path, key=EXTENDS, found=repr(parent))
        target = (path.parent / parent) if parent.endswith((".yaml", ".yml")) else PRESETS_DIR / f"{parent}.yaml"
        if not parent.endswith((".yaml", ".yml")) and not target.exists():
            known = sorted(q.stem for q in PRESETS_DIR.glob("*.yaml"))
            raise GnsInputError(f"unknown preset '{parent}'", file=path, key=EXTENDS, expected=known, found=parent)
        resolved = [p.resolve() for p in (*chain, path)]
        if target.resolve() in resolved:
            raise GnsInputError("config files extend each other in a circle", file=path, key=EXTENDS,
                                found=" -> ".join(str(p) for p in (*chain, path, target)))
        config = _load_file(target, config, (*chain, path))
    return _apply(config, data, "", str(path))


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of :meth:`Config.to_dict` (used for checkpoints)."""
    return _apply(Config(), data, "", "checkpoint")


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML (atomically: a resumed run never reads half a file)."""
    from gns.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


PRESETS_DIR = Path(__file__).parent / "configs"


def preset_path(name: str) -> Path:
    """Path of a shipped preset (``gns/configs/<name>.yaml``)."""
    p = PRESETS_DIR / f"{name}.yaml"
    if not p.exists():
        known = sorted(q.stem for q in PRESETS_DIR.glob("*.yaml"))
        raise GnsInputError(f"unknown preset '{name}'", expected=known, found=name)
    return p


# ModelConfig fields that only the particle simulator reads
PARTICLE_MODEL_FIELDS = ("velocity_encoding", "edge_velocity", "box_position", "wall_spacing", "mirror_average",
                         "mirror_average_in_training", "body_force")


def refuse_particle_settings(model: ModelConfig, kind: str) -> None:
    """Refuse a model config of the ``kind`` domain (``"mesh"``, ``"objects"``) that sets a particle-only field away
    from its default: it would be silently ignored.

    Raises:
        GnsInputError: naming the first such ``model.<field>``, its default and the value found.
    """
    default = ModelConfig()
    for name in PARTICLE_MODEL_FIELDS:
        if getattr(model, name) != getattr(default, name):
            raise GnsInputError(f"a setting of particle models only; the {kind} simulator does not read it",
                                key=f"model.{name}", expected=getattr(default, name), found=getattr(model, name))

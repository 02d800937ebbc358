"""gns: learned physics simulators built from graph networks.

The public API; notebooks and user code import only from here.
"""

from gns.config import Config, EvalConfig, ModelConfig, TrainConfig, load_config, preset_path
from gns.errors import CheckpointMismatchError, GnsInputError, GraphTooLargeError
from gns.graph import EdgeSet, Graph, batch_graphs
from gns.nn import EncodeProcessDecode, GraphNetBlock, build_mlp
from gns.normalization import Normalizer, OnlineNormalizer, inflate_std

__version__ = "0.1.0"

_LAZY = {
    # data layer
    "DatasetMetadata": "gns.data", "Trajectory": "gns.data", "TrajectorySplit": "gns.data",
    "load_metadata": "gns.data", "save_metadata": "gns.data", "open_split": "gns.data", "write_split": "gns.data",
    "compute_statistics": "gns.data", "convert_dataset": "gns.data", "inspect_dataset": "gns.data",
    "WindowSampler": "gns.data.windows",
    # process settings
    "tune_allocator": "gns.allocator",
    # the shared core: states, domains, rollouts, evaluation, rollout files, training
    "State": "gns.state", "hold": "gns.state",
    "get_domain": "gns.domains", "domain_for_dataset": "gns.domains", "load_simulator": "gns.domains",
    "open_split_for": "gns.domains",
    "rollout": "gns.rollout", "evaluate_split": "gns.evaluate", "format_table": "gns.evaluate",
    "RolloutRecord": "gns.rollout_io", "read_rollouts": "gns.rollout_io", "read_rollout": "gns.rollout_io",
    "write_rollouts": "gns.rollout_io", "comparison_panels": "gns.rollout_io",
    # counterfactual queries
    "counterfactual_query": "gns.counterfactual", "format_counterfactuals": "gns.counterfactual",
    "run_counterfactuals": "gns.counterfactual", "Scenario": "gns.interventions", "Selection": "gns.interventions",
    "parse_interventions": "gns.interventions",
    "Trainer": "gns.train.loop", "SimulatorTask": "gns.train.task",
    "init_distributed": "gns.train.distributed", "Ranks": "gns.train.distributed",
    # particles
    "ParticleSimulator": "gns.particles.simulator", "ParticleState": "gns.particles.state",
    "ParticleBatch": "gns.particles.state", "ParticleWindows": "gns.particles.windows",
    "ParticleTask": "gns.particles.task", "radius_graph": "gns.neighbors",
    "animate_particles": "gns.particles.viz", "animate_rollout": "gns.particles.viz",
    "render_rollout": "gns.particles.viz", "frame_figure": "gns.particles.viz",
    # meshes (MeshGraphNets)
    "MeshMetadata": "gns.data.mesh", "MeshTrajectory": "gns.data.mesh", "open_mesh_split": "gns.data.mesh",
    "write_mesh_split": "gns.data.mesh", "load_mesh_metadata": "gns.data.mesh",
    "convert_meshgraphnets": "gns.data.meshgraphnets", "read_meshgraphnets_split": "gns.data.meshgraphnets",
    "MeshSimulator": "gns.mesh.simulator", "MeshState": "gns.mesh.state", "MeshTask": "gns.mesh.task",
    "read_mesh_rollout": "gns.mesh.export", "mesh_record": "gns.mesh.export",
    "animate_cloth": "gns.mesh.viz", "animate_flow": "gns.mesh.viz", "render_mesh_rollout": "gns.mesh.viz",
    "plot_rmse_vs_horizon": "gns.mesh.viz", "export_rollout": "gns.mesh.export",
    # rigid objects
    "ObjectSimulator": "gns.objects.simulator", "ObjectState": "gns.objects.state", "ObjectTask": "gns.objects.task",
    "ObjectWindows": "gns.objects.windows", "render_object_rollout": "gns.objects.viz",
    "animate_objects": "gns.objects.viz", "record_trajectory": "gns.objects.viz",
    "open_object_split": "gns.data.objects", "load_object_metadata": "gns.data.objects",
    "PlanConfig": "gns.objects.plan", "plan_on_split": "gns.objects.plan", "format_planning": "gns.objects.plan",
    # reference solvers (optional dependencies are imported on use)
    "ClothConfig": "gns.solvers.cloth", "generate_cloth": "gns.solvers.cloth",
    "Flow2DConfig": "gns.solvers.flow2d", "generate_flow2d": "gns.solvers.flow2d",
    "Water2DConfig": "gns.solvers.water2d", "generate_water2d": "gns.solvers.water2d",
    "Objects2DConfig": "gns.solvers.objects2d", "generate_objects2d": "gns.solvers.objects2d",
    # plots shared by every domain
    "plot_error_vs_horizon": "gns.viz", "plot_error_over_time": "gns.viz", "animation_html": "gns.viz",
    "save_animation": "gns.viz",
}


def __getattr__(name: str):
    """Import heavier parts on first use, so ``import gns`` stays fast."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gns' has no attribute {name!r}")


__all__ = ["Config", "ModelConfig", "TrainConfig", "EvalConfig", "load_config", "preset_path", "GnsInputError",
           "GraphTooLargeError", "CheckpointMismatchError", "Graph", "EdgeSet", "batch_graphs",
           "EncodeProcessDecode", "GraphNetBlock", "build_mlp", "Normalizer", "OnlineNormalizer", "inflate_std",
           *_LAZY]

"""Triangle and tetrahedral meshes as graphs (MeshGraphNets, Pfaff et al. 2020).

- :mod:`gns.mesh.types`: DeepMind node types, one-hot encoding, checks against declared types.
- :mod:`gns.mesh.topology`: mesh edges from cells; validation of a mesh before use.
- :mod:`gns.mesh.world_edges`: world-space proximity edges that are not mesh edges (contact).
- :mod:`gns.mesh.features`: node and edge features (relative displacements and norms).
- :mod:`gns.mesh.io`: reading and writing mesh files through trimesh; structured sheets.
"""

from gns.mesh.features import mesh_edge_features, node_features, relative_displacement, world_edge_features
from gns.mesh.io import MESH_SUFFIXES, load_mesh, make_rectangle_mesh, save_mesh
from gns.mesh.topology import MeshSummary, cell_sizes, edges_from_cells, validate_mesh
from gns.mesh.types import (NODE_TYPE_SIZE, NodeType, check_node_types, declared_type_ids, one_hot,
                            type_mask)
from gns.mesh.world_edges import suggest_world_radius, world_edges

__all__ = [
    "NodeType", "NODE_TYPE_SIZE", "one_hot", "type_mask", "declared_type_ids", "check_node_types",
    "edges_from_cells", "validate_mesh", "MeshSummary", "cell_sizes",
    "world_edges", "suggest_world_radius",
    "mesh_edge_features", "world_edge_features", "node_features", "relative_displacement",
    "load_mesh", "save_mesh", "make_rectangle_mesh", "MESH_SUFFIXES",
]

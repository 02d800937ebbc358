"""Physics-free networks: they map a graph to node tensors and know no units, walls or time step."""

from gns.nn.encode_process_decode import PRECISIONS, EncodeProcessDecode
from gns.nn.execution import bf16_native, set_execution
from gns.nn.graph_net import EdgeBlock, GraphNetBlock
from gns.nn.mlp import build_mlp
from gns.nn.scatter import scatter_sum

__all__ = ["EncodeProcessDecode", "GraphNetBlock", "EdgeBlock", "build_mlp", "scatter_sum", "PRECISIONS",
           "bf16_native", "set_execution"]

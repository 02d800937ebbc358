import pytest
import torch

from gns.graph import EdgeSet, Graph, batch_graphs
from gns.nn import EncodeProcessDecode, GraphNetBlock, scatter_sum


def random_graph(n: int, e: int, fn: int = 5, fe: int = 3, seed: int = 0) -> Graph:
    g = torch.Generator().manual_seed(seed)
    senders = torch.randint(0, max(n, 1), (e,), generator=g)
    receivers = torch.randint(0, max(n, 1), (e,), generator=g)
    return Graph(torch.randn(n, fn, generator=g), {"neighbors": EdgeSet(torch.randn(e, fe, generator=g), senders,
                                                                          receivers)})


def test_scatter_sum_matches_loop():
    src = torch.randn(50, 4)
    index = torch.randint(0, 7, (50,))
    out = scatter_sum(src, index, 9)
    ref = torch.zeros(9, 4)
    for e in range(50):
        ref[index[e]] += src[e]
    assert torch.allclose(out, ref, atol=1e-6)
    assert out[7:].abs().sum() == 0  # nodes without edges get zeros


def test_edge_block_split_first_layer_equals_concat():
    torch.manual_seed(0)
    block = GraphNetBlock(16, ["a"])
    nodes, edges = torch.randn(10, 16), torch.randn(30, 16)
    s, r = torch.randint(0, 10, (30,)), torch.randint(0, 10, (30,))
    eb = block.edge_blocks["a"]
    assert torch.allclose(eb(edges, nodes, s, r), eb.forward_concat(edges, nodes, s, r), atol=1e-5)


def _block_both_ways(block, nodes, edges, connectivity, monkeypatch, chunk_bytes):
    """(whole-tensor result, piecewise result) of one block without gradients."""
    import gns.nn.graph_net as graph_net

    with torch.no_grad():
        monkeypatch.setattr(graph_net, "EDGE_CHUNK_BYTES", 0)
        whole = block(nodes, edges, connectivity)
        monkeypatch.setattr(graph_net, "EDGE_CHUNK_BYTES", chunk_bytes)
        assert block.chunked(nodes)
        pieces = block(nodes, edges, connectivity)
    return whole, pieces


def test_block_in_pieces_equals_whole_tensors(monkeypatch):
    """The inference path over pieces of the edges (several, the last one short) gives the whole-tensor result,
    for every edge set, and leaves its inputs as they were."""
    torch.manual_seed(0)
    block = GraphNetBlock(16, ["a", "b"])
    nodes = torch.randn(20, 16)
    edges = {"a": torch.randn(203, 16), "b": torch.randn(57, 16)}
    connectivity = {name: (torch.randint(0, 20, (len(e),)), torch.randint(0, 20, (len(e),)))
                    for name, e in edges.items()}
    before = {name: e.clone() for name, e in edges.items()}
    (n_whole, e_whole), (n_pieces, e_pieces) = _block_both_ways(block, nodes, edges, connectivity, monkeypatch,
                                                                chunk_bytes=16 * 4 * 25)   # 25 rows a piece
    assert torch.allclose(n_pieces, n_whole, atol=1e-5)
    for name in edges:
        assert torch.allclose(e_pieces[name], e_whole[name], atol=1e-5)
        assert torch.equal(edges[name], before[name])
    assert not torch.allclose(n_whole, nodes, atol=1e-3)   # the block did something


def test_block_in_pieces_only_without_gradients(monkeypatch):
    import gns.nn.graph_net as graph_net

    monkeypatch.setattr(graph_net, "EDGE_CHUNK_BYTES", 1024)
    nodes = torch.randn(4, 8)
    assert GraphNetBlock.chunked(nodes) is False   # gradients on (the default)
    with torch.no_grad():
        assert GraphNetBlock.chunked(nodes) is True
        assert GraphNetBlock.chunked(nodes.double()) is False
    with torch.enable_grad():
        assert GraphNetBlock.chunked(nodes) is False
    monkeypatch.setattr(graph_net, "EDGE_CHUNK_BYTES", 0)
    with torch.no_grad():
        assert GraphNetBlock.chunked(nodes) is False


def test_edge_latents_change_across_steps():
    torch.manual_seed(0)
    net = EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=16, message_passing_steps=3)
    graph = random_graph(12, 40)
    nodes, edges = net.encode(graph)
    _, _, history = net.process(nodes, edges, graph, return_history=True)
    assert len(history) == 4
    for before, after in zip(history[:-1], history[1:]):
        delta = (after["neighbors"] - before["neighbors"]).abs().mean()
        assert delta > 1e-3, "edge latents must be updated by every message-passing step"
    # and the edge update reaches the output: gradients flow into every edge MLP
    net(graph).sum().backward()
    for block in net.processor:
        assert block.edge_blocks["neighbors"].mlp[0].weight.grad.abs().sum() > 0


def test_batched_equals_unbatched_on_corner_cases():
    torch.manual_seed(0)
    net = EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=16, message_passing_steps=2)
    graphs = [random_graph(6, 10, seed=1), random_graph(1, 0, seed=2),   # isolated node, no edges
              random_graph(4, 12, seed=3), random_graph(3, 1, seed=4)]
    batched = net(batch_graphs(graphs))
    separate = torch.cat([net(g) for g in graphs])
    assert torch.allclose(batched, separate, atol=1e-5)


def test_multiple_edge_sets_have_separate_mlps():
    net = EncodeProcessDecode(5, {"mesh": 3, "world": 4}, 2, latent_size=8, message_passing_steps=1)
    g = Graph(torch.randn(6, 5), {"mesh": EdgeSet(torch.randn(5, 3), torch.arange(5), torch.arange(1, 6)),
                                  "world": EdgeSet(torch.randn(2, 4), torch.tensor([0, 5]), torch.tensor([5, 0]))})
    assert net(g).shape == (6, 2)
    assert set(net.processor[0].edge_blocks) == {"mesh", "world"}


def test_pyg_round_trip():
    torch_geometric = __import__("pytest").importorskip("torch_geometric")
    from torch_geometric.data import Batch

    graphs = [random_graph(5, 8, seed=1), random_graph(3, 4, seed=2)]
    batch = Batch.from_data_list([g.to_pyg() for g in graphs])
    g = Graph.from_pyg(batch)
    ours = batch_graphs(graphs)
    assert torch.equal(g.nodes, ours.nodes)
    assert torch.equal(g.edge_sets["neighbors"].senders, ours.edge_sets["neighbors"].senders)
    assert torch.equal(g.n_node, ours.n_node)
    net = EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=8, message_passing_steps=1)
    assert torch.allclose(net(g), net(ours))


def symmetric_graph(n: int, radius: float, seed: int = 0, fn: int = 5, fe: int = 3) -> Graph:
    """Random points joined both ways within ``radius`` (self-loops included)."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 2, generator=g)
    senders, receivers = (torch.cdist(points, points) < radius).nonzero().T
    return Graph(torch.randn(n, fn, generator=g),
                 {"neighbors": EdgeSet(torch.randn(len(senders), fe, generator=g), senders, receivers)})


def test_reverse_edges_pairs_each_edge_with_its_reverse():
    import pytest

    from gns.graph import reverse_edges

    graph = symmetric_graph(40, 0.3)
    edges = graph.edge_sets["neighbors"]
    shuffle = torch.randperm(len(edges.senders), generator=torch.Generator().manual_seed(1))
    senders, receivers = edges.senders[shuffle], edges.receivers[shuffle]
    rev = reverse_edges(senders, receivers, 40)
    assert torch.equal(senders[rev], receivers) and torch.equal(receivers[rev], senders)
    with pytest.raises(ValueError, match="no reverse"):
        reverse_edges(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2]), 3)
    with pytest.raises(ValueError, match="repeated"):
        reverse_edges(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), 3)


def test_antisymmetric_decoder_pair_terms_sum_to_zero_per_graph():
    torch.manual_seed(0)
    net = EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=16, message_passing_steps=2,
                              decoder="antisymmetric")
    graphs = [symmetric_graph(25, 0.35, seed=s) for s in (0, 1)]
    batch = batch_graphs(graphs)
    encoded, edges = net.encode(batch)
    nodes, edges = net.process(encoded, edges, batch)
    pair = net.pair_sum(nodes, edges["neighbors"], batch)                 # (N, 2)
    assert pair.abs().mean() > 1e-3                                       # not trivially zero
    for part in pair.split([25, 25]):                                     # each graph on its own
        assert torch.allclose(part.sum(0), torch.zeros(2), atol=1e-5)
    out = net(batch)
    # the output's total is the node terms' total: the pair terms move nothing as a whole
    assert torch.allclose(out.sum(0), net.decoder(encoded).sum(0), atol=1e-4)
    # one graph alone gives the same outputs as in the batch
    assert torch.allclose(net(graphs[0]), out[:25], atol=1e-5)


def test_gated_antisymmetric_decoder_ungated_nodes_share_one_mean_output():
    torch.manual_seed(0)
    net = EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=16, message_passing_steps=2,
                              decoder="gated_antisymmetric")
    with torch.no_grad():
        net.bias.copy_(torch.tensor([0.3, -0.7]))
    graphs = [symmetric_graph(25, 0.35, seed=s) for s in (0, 1)]
    with pytest.raises(ValueError, match="node_gate"):
        net(graphs[0])
    # graph 0: no node gated -> its outputs average to the bias whatever its inputs; graph 1: some gated
    gates = [torch.zeros(25), (torch.arange(25) % 3 == 0).float()]
    graphs = [Graph(g.nodes, g.edge_sets, g.n_node, gate) for g, gate in zip(graphs, gates)]
    batch = batch_graphs(graphs)
    assert torch.equal(batch.node_gate, torch.cat(gates))
    out = net(batch)
    free, walled = out.split([25, 25])
    assert free.std(0).min() > 1e-3                                        # outputs differ per node
    assert torch.allclose(free.mean(0), net.bias.detach(), atol=1e-5)
    assert not torch.allclose(walled.mean(0), net.bias.detach(), atol=1e-3)
    assert torch.allclose(net(graphs[1]), walled, atol=1e-5)               # batched equals unbatched
    with pytest.raises(ValueError, match="node_gate"):
        batch_graphs([graphs[0], symmetric_graph(25, 0.35, seed=2)])
    with pytest.raises(ValueError, match="one weight per node"):
        Graph(graphs[0].nodes, graphs[0].edge_sets, None, torch.zeros(3))

"""gns.nn.execution: each faster way of computing the network equals the plain one to rounding."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gns.nn.execution as execution
from gns.errors import GnsInputError
from gns.graph import EdgeSet, Graph
from gns.neighbors import radius_graph
from gns.nn import EncodeProcessDecode, bf16_native, set_execution

needs_bf16 = pytest.mark.skipif(not bf16_native("cpu"), reason="this CPU has no native bf16")


def radius_like_graph(n: int, seed: int = 0, two_sets: bool = False) -> Graph:
    """``n`` random points in the unit square joined within a radius of ~8 neighbours (a symmetric
    edge set, receivers sorted, self loops), as the particle simulator builds them."""
    g = torch.Generator().manual_seed(seed)
    position = torch.rand(n, 2, generator=g)
    senders, receivers = radius_graph(position, (8 / (math.pi * n)) ** 0.5)
    sets = {"neighbors": EdgeSet(torch.randn(len(senders), 3, generator=g), senders, receivers)}
    if two_sets:
        sets["mesh"] = EdgeSet(torch.randn(n, 3, generator=g), torch.arange(n).roll(1), torch.arange(n))
    return Graph(torch.randn(n, 5, generator=g), sets)


def network(decoder: str = "node", two_sets: bool = False, seed: int = 0) -> EncodeProcessDecode:
    torch.manual_seed(seed)
    edge_in = {"neighbors": 3, "mesh": 3} if two_sets else {"neighbors": 3}
    return EncodeProcessDecode(5, edge_in, 2, latent_size=32, message_passing_steps=3, decoder=decoder)


def gradients(net: nn.Module, graph: Graph) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    out = net(graph)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize("decoder,two_sets", [("node", False), ("antisymmetric", False), ("node", True)])
def test_checkpointed_processor_gives_the_plain_outputs_and_gradients(decoder, two_sets):
    graph = radius_like_graph(40, two_sets=two_sets)
    net = network(decoder, two_sets)
    out, grads = gradients(net, graph)
    set_execution(net, checkpoint_processor=True)
    assert net.checkpoint_processor
    out_ckpt, grads_ckpt = gradients(net, graph)
    assert torch.allclose(out_ckpt, out, atol=1e-6)
    assert grads.keys() == grads_ckpt.keys()
    for name, grad in grads.items():
        assert torch.allclose(grads_ckpt[name], grad, rtol=1e-5, atol=1e-6), name
    assert any(g.abs().sum() > 0 for name, g in grads_ckpt.items() if name.startswith("processor.2."))


def test_checkpointing_keeps_less_for_the_backward():
    """The point of checkpointing: fewer activations saved for the backward (counted, not timed)."""
    graph = radius_like_graph(200)
    net = network()

    def saved_bytes() -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(graph).sum()
        return total

    plain = saved_bytes()
    set_execution(net, checkpoint_processor=True)
    assert saved_bytes() < 0.5 * plain


def test_checkpointing_is_off_without_gradients():
    net = network()
    set_execution(net, checkpoint_processor=True)
    graph = radius_like_graph(30)
    with torch.no_grad():
        out = net(graph)
    set_execution(net, checkpoint_processor=False)
    with torch.no_grad():
        assert torch.equal(out, net(graph))


@needs_bf16
def test_bf16_forward_is_close_to_fp32_and_returns_the_input_dtype():
    graph = radius_like_graph(60)
    net = network()
    with torch.no_grad():
        ref = net(graph)
        set_execution(net, precision="bf16")
        out = net(graph)
    assert out.dtype == torch.float32
    assert not torch.equal(out, ref)                                     # it did run in bf16
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()              # bf16 keeps ~3 significant digits
    out.sum()  # and the parameters stay float32
    assert all(p.dtype == torch.float32 for p in net.parameters())


@needs_bf16
def test_bf16_gradients_reach_every_parameter_in_float32():
    net = network()
    set_execution(net, precision="bf16")
    _, grads = gradients(net, radius_like_graph(40))
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads.values())
    assert sum(bool(g.abs().sum() > 0) for g in grads.values()) > 0.9 * len(grads)


def test_bf16_is_refused_without_native_support(monkeypatch):
    monkeypatch.setattr(execution, "bf16_native", lambda device: False)
    net = network()
    with pytest.raises(GnsInputError, match="key 'train.precision'.*no native bfloat16"):
        set_execution(net, precision="bf16", key="train.precision")
    assert net.precision == "fp32"


def test_bad_settings_are_clear_errors():
    with pytest.raises(GnsInputError, match="key 'eval.precision': unknown precision"):
        set_execution(network(), precision="fp16", key="eval.precision")
    with pytest.raises(ValueError, match="Linear holds no EncodeProcessDecode"):
        set_execution(nn.Linear(2, 2), checkpoint_processor=True)
    assert set_execution(nn.Linear(2, 2), precision="fp32", checkpoint_processor=False) == []   # nothing asked
    with pytest.raises(ValueError, match="unknown precision"):
        EncodeProcessDecode(5, {"neighbors": 3}, 2, latent_size=8, message_passing_steps=1, precision="half")


def test_execution_settings_leave_the_state_dict_alone():
    net = network()
    keys = list(net.state_dict())
    set_execution(net, checkpoint_processor=True)
    assert list(net.state_dict()) == keys
    fresh = network(seed=1)
    fresh.load_state_dict(net.state_dict())


@pytest.mark.slow
def test_compiled_network_equals_eager_across_graph_sizes():
    """torch.compile(dynamic=True): the same outputs and gradients as eager, on graphs of two sizes."""
    eager, compiled = network(), network()
    set_execution(compiled, compile=True)
    for n in (30, 47):
        graph = radius_like_graph(n, seed=n)
        try:
            out_c, grads_c = gradients(compiled, graph)
        except Exception as exc:  # no C++ compiler, or an inductor that cannot build here
            if "compile" in type(exc).__name__.lower() or "Backend" in type(exc).__name__:
                pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}")
            raise
        out_e, grads_e = gradients(eager, graph)
        assert torch.allclose(out_c, out_e, atol=1e-5)
        for name, grad in grads_e.items():
            assert torch.allclose(grads_c[name], grad, rtol=1e-4, atol=1e-5), name
    assert list(compiled.state_dict()) == list(eager.state_dict())

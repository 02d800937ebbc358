"""The one MLP factory every network block is built from."""

from __future__ import annotations

from torch import nn


def build_mlp(in_size: int, hidden_size: int, out_size: int, hidden_layers: int = 2,
              layer_norm: bool = True, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``hidden_layers`` hidden layers of width ``hidden_size``, then a linear output.

    With ``layer_norm`` the output is normalized (as every encoder/processor MLP in GNS and
    MeshGraphNets is); decoders are built with ``layer_norm=False``.

    Shapes:
        input ``(*, in_size)`` -> output ``(*, out_size)``.
    """
    layers: list[nn.Module] = []
    width = in_size
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_size), activation()]
        width = hidden_size
    layers.append(nn.Linear(width, out_size))
    if layer_norm:
        layers.append(nn.LayerNorm(out_size))
    return nn.Sequential(*layers)

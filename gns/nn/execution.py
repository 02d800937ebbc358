"""How the networks of a model compute, not what: precision, gradient checkpointing, compilation.

Three settings, each off by default and none changing a parameter (a checkpoint loads whatever
they are), measured side by side with the plain path in ``benchmarks/step_options.py``
(figures in docs/benchmarks.md):

* ``precision="bf16"``: the forward of every :class:`~gns.nn.EncodeProcessDecode` runs under
  bf16 autocast (matrix multiplies in bfloat16, the rest as autocast decides); its outputs come
  back in the input's dtype, so losses, targets and integration stay in float32. Refused where
  the hardware has no native bf16 (:func:`bf16_native`): emulated, it would be slower than fp32.
* ``checkpoint_processor=True``: each processor block keeps only its inputs and recomputes its
  activations in the backward (``torch.utils.checkpoint``): peak memory of one block's
  activations instead of all of them, for about one more forward pass of the processor.
* ``compile=True``: ``torch.compile(dynamic=True)`` of each network. Graphs change size every
  step, so the node and edge counts are traced as symbols from the first call: one compiled
  graph serves every size. What still makes a new graph is what the code branches on: training
  vs evaluation mode, gradients on or off (the pushforward unroll, rollouts), the settings
  above; torch keeps at most ``torch._dynamo.config.cache_size_limit`` (8) graphs per network
  and runs anything beyond them eagerly, so recompilation is bounded.
"""

from __future__ import annotations

import torch
from torch import nn

from gns.errors import GnsInputError
from gns.nn.encode_process_decode import PRECISIONS, EncodeProcessDecode

__all__ = ["PRECISIONS", "bf16_native", "set_execution"]


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively.

    CPUs: oneDNN's check (x86 with AVX512-BF16 or AMX, or Arm with BF16); CUDA: compute
    capability 8.0 or above (Ampere on). Anything else: False.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.3 has no including_emulation
            return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except RuntimeError:  # torch built without oneDNN
            return False
    return False


def set_execution(model: nn.Module, *, precision: str | None = None, checkpoint_processor: bool | None = None,
                  compile: bool = False, key: str = "precision") -> list[EncodeProcessDecode]:
    """Apply the settings (module docstring) to every :class:`~gns.nn.EncodeProcessDecode` in ``model``.

    Args:
        model: a simulator or a network, on the device it will run on (bf16 is checked against it).
        precision: ``"fp32"`` or ``"bf16"``; ``None`` keeps each network's.
        checkpoint_processor: recompute processor blocks in the backward; ``None`` keeps each network's.
        compile: compile each network (``nn.Module.compile``: the module and its state dict stay as
            they are); False leaves a network compiled earlier compiled.
        key: the setting that asked for ``precision``, named in errors (``train.precision``, ...).

    Returns:
        the networks changed.

    Raises:
        GnsInputError: an unknown precision, or bf16 on a device without native bf16.
        ValueError: a setting other than the plain one asked of a model that holds no network.
    """
    networks = [m for m in model.modules() if isinstance(m, EncodeProcessDecode)]
    if not networks and (precision not in (None, "fp32") or checkpoint_processor or compile):
        raise ValueError(f"{type(model).__name__} holds no EncodeProcessDecode network to set up")
    if precision is not None and precision not in PRECISIONS:
        raise GnsInputError("unknown precision", key=key, expected=PRECISIONS, found=precision)
    if precision == "bf16" and networks:
        device = next(networks[0].parameters()).device
        if not bf16_native(device):
            raise GnsInputError(f"{device} has no native bfloat16 (CPUs: AVX512-BF16 or AMX; GPUs: compute "
                                "capability 8.0 or above): autocast would emulate it, slower than fp32",
                                key=key, expected="fp32 here", found="bf16")
    for network in networks:
        network.set_execution(precision, checkpoint_processor)
        if compile:
            network.compile(dynamic=True)
    return networks

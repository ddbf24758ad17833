"""Gradient statistics for ``netspec diagnose``, by PyTorch's autograd on the exported module
(:func:`netspec.export.torch.to_module`): the network's own weights, the same forward pass.

The loss (``--loss``): ``mean``, the mean of every output value; ``cross_entropy``, the mean negative
log-probability of random labels (uniform over the classes, seeded) for a softmax or log_softmax
output; ``auto`` picks cross_entropy for such outputs and mean otherwise. Reported per parameter: the
std of its gradient and ``||grad|| / ||w||`` (the size of an SGD step relative to the weights, per
unit learning rate). Both are invariant under the layout transposes between netspec and PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netspec.diagnose.stats import PROBABILITY_HEADS, ParamStats
from netspec.extras import install_hint

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network


def loss_for(net: Network, loss: str) -> str:
    """The loss ``auto`` stands for: cross_entropy for a softmax/log_softmax output, else mean."""
    if loss != "auto":
        return loss
    head = next(cl.layer for cl in net.layers if cl.name == net.outputs[0])
    return "cross_entropy" if head.has_activation() and head.activation.name in PROBABILITY_HEADS else "mean"


def parameter_stats(net: Network, params: dict[str, np.ndarray], x: Any, loss: str) -> tuple[list[ParamStats], str]:
    """Per parameter gradient statistics, or ([], why) when PyTorch (the ``torch`` extra) is missing."""
    try:
        import torch
    except ImportError:
        return [], ("PyTorch is not installed (gradients use its autograd; the forward statistics need "
                    f"nothing): {install_hint('torch')}")  # fmt: skip
    from netspec.export.torch import to_module

    module = to_module(net, params).to(getattr(torch, net.compute_dtype))  # half types: computed in float32
    named = module.netspec_parameters()
    if not any(p.requires_grad for p in named.values()):
        return [], "the network has no trainable parameters"
    inputs = x if isinstance(x, dict) else {next(iter(net.inputs)): x}
    out = module(**{k: torch.as_tensor(v) for k, v in inputs.items()})
    out = out[net.outputs[0]] if isinstance(out, dict) else out
    value = _loss(out, loss_for(net, loss), net)
    value.backward()
    stats = []
    for name, p in named.items():
        g = p.grad.detach().double() if p.grad is not None else torch.zeros_like(p, dtype=torch.float64)
        w_norm = float(p.detach().double().norm())
        stats.append(ParamStats(name, float(g.std(unbiased=False)), float(g.norm()) / w_norm if w_norm > 0 else None))
    return stats, ""


def _loss(out: Any, kind: str, net: Network) -> Any:
    import numpy as np
    import torch

    if kind == "mean":
        return out.mean()
    head = next(cl.layer for cl in net.layers if cl.name == net.outputs[0])
    log_p = out if head.has_activation() and head.activation.name == "log_softmax" else torch.log(out.clamp_min(1e-30))
    classes = log_p.shape[-1]
    labels = np.random.default_rng(0).integers(0, classes, log_p.shape[:-1])
    picked = torch.gather(log_p, -1, torch.as_tensor(labels)[..., None])
    return -picked.mean()

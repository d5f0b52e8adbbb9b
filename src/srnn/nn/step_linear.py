"""Linear layers used at every step of a time loop, with weight gradients gathered over steps.

A layer applied at each of T steps to B rows gets, from autograd, T weight-gradient products
``g_t^T x_t`` of inner size B, which run far below the matmul peak for small B (batch 16). Inside
:func:`batched_weight_grads` a :class:`StepLinear` instead keeps each step's ``(g_t, x_t)`` during
the backward pass and forms ``G^T X`` over many steps' rows at once (and the bias gradient as the
column sum of G), handing the sum to autograd once every step's gradient is in. The gradient is
the same sum; only the grouping of the products changes. Outside the context, or without
gradients, it is a plain ``nn.Linear``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FLUSH_ROWS = 512  # gathered rows per weight-gradient product: large enough to run near the
# matmul peak, small enough that the gathered block stays in cache and is not a fresh allocation


class _Pass:
    """One forward pass of one layer: the (g_t, x_t) pairs its steps leave in the backward,
    folded into the gradients every ``FLUSH_ROWS`` rows."""

    __slots__ = ("layer", "weight", "bias", "grads", "inputs", "rows", "grad_w", "grad_b")

    def __init__(self, layer: StepLinear) -> None:
        self.layer = layer
        self.weight: Tensor | None = None
        self.bias: Tensor | None = None
        self.grads: list[Tensor] = []
        self.inputs: list[Tensor] = []
        self.rows = 0
        self.grad_w: Tensor | None = None
        self.grad_b: Tensor | None = None

    def params(self) -> tuple[Tensor, Tensor | None]:
        """The layer's weight and bias as outputs of one :class:`_Collect` node, created at the
        first step: autograd runs that node after every step that used them."""
        if self.weight is None:
            self.weight, self.bias = _Collect.apply(self.layer.weight, self.layer.bias, self)
        return self.weight, self.bias

    def record(self, g: Tensor, x: Tensor) -> None:
        self.grads.append(g)
        self.inputs.append(x)
        self.rows += g.shape[0]
        if self.rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """``grad_W += G^T X`` and ``grad_b += sum(G)`` over the pairs gathered so far."""
        if not self.grads:
            return
        g = torch.cat(self.grads) if len(self.grads) > 1 else self.grads[0]
        x = torch.cat(self.inputs) if len(self.inputs) > 1 else self.inputs[0]
        self.grads.clear()
        self.inputs.clear()
        self.rows = 0
        grad_w, grad_b = g.t().mm(x), g.sum(0)  # a plain product: FLOP counters see it
        if self.grad_w is None:
            self.grad_w, self.grad_b = grad_w, grad_b
        else:
            self.grad_w += grad_w
            self.grad_b += grad_b


class _Collect(torch.autograd.Function):
    """Identity on (weight, bias) in the forward; in the backward, the gradients of all steps."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, bias: Tensor | None, run: _Pass
                ) -> tuple[Tensor, Tensor | None]:
        ctx.run = run
        ctx.set_materialize_grads(False)
        return weight.view_as(weight), None if bias is None else bias.view_as(bias)

    @staticmethod
    def backward(ctx: Any, *_: Any) -> tuple[Tensor | None, Tensor | None, None]:
        run: _Pass = ctx.run
        run.flush()
        grad_w, grad_b = run.grad_w, run.grad_b
        run.grad_w = run.grad_b = None
        return grad_w, (grad_b if ctx.needs_input_grad[1] else None), None


class _Step(torch.autograd.Function):
    """``x W^T + b`` at one step; its backward gives x's gradient and leaves (g, x) to the pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, run: _Pass) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.run = run
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None]:
        x, weight = ctx.saved_tensors
        ctx.run.record(g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1]))
        return (g.matmul(weight) if ctx.needs_input_grad[0] else None), None, None, None


class StepLinear(nn.Linear):
    """``nn.Linear`` for a layer used at every step of a loop (see the module docstring)."""

    _pass: _Pass | None = None

    def forward(self, x: Tensor) -> Tensor:
        run = self._pass
        if run is None or not torch.is_grad_enabled() or not self.weight.requires_grad:
            return F.linear(x, self.weight, self.bias)
        weight, bias = run.params()
        return _Step.apply(x, weight, bias, run)


@contextmanager
def batched_weight_grads(module: nn.Module) -> Iterator[None]:
    """Within the block, every :class:`StepLinear` of ``module`` gathers its weight gradient over
    the steps of this pass into one product (computed during the later backward pass)."""
    layers = [m for m in module.modules() if isinstance(m, StepLinear)]
    if not layers or not torch.is_grad_enabled():
        yield
        return
    previous = [m._pass for m in layers]
    for m in layers:
        m._pass = _Pass(m)
    try:
        yield
    finally:
        for m, p in zip(layers, previous, strict=True):
            m._pass = p

"""A one-layer GRU over a whole sequence with a hand-written backward pass.

The equations and the parameters are ``nn.GRU``'s (gates in the order r, z, n)::

    r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

On CPU the backward pass of ``nn.GRU`` runs as many small autograd operations per time step.
Here :class:`_GRUSequence` is one autograd node for the whole sequence:

- forward: the input products ``W_i x_t + b_i`` of all steps in one matmul; per step only
  ``W_h h_{t-1} + b_h`` (one addmm) and the gate arithmetic, in place on preallocated buffers.
  It keeps h_0:T, r, z, n and ``W_hn h_{t-1} + b_hn`` of every step in (T, B, ...) tensors.
- backward: a reverse loop of elementwise work and one matmul per step
  (``dh_{t-1} = z_t dh_t + dg_t W_h``, dg_t the gradient of ``W_h h_{t-1} + b_h``), writing the
  gradients of the gate pre-activations of all steps into (T, B, ...) tensors; the weight, bias
  and input gradients are then three matmuls over all T * B rows at once.

The matmuls are ``nn.GRU``'s; what this saves is the per-step autograd bookkeeping. Measured
alternately on one thread of a shared 2-core CPU (``python -m benchmarks.gru_speed``, I = 500,
H = 300, T = 100; two runs, the latest in ``benchmarks/gru_speed.json``), forward + backward
takes 0.83-0.93 of ``nn.GRU``'s time at batch 16 and 0.88-0.97 at batch 64 (ratio of the medians
and median of the rounds' ratios); the forward alone takes 0.95-1.04 of it.

:class:`FusedGRU` has ``nn.GRU``'s parameter names, shapes and initialisation (a state dict of
one loads into the other), takes batch-first input (B, T, I) and an optional h_0 (1, B, H), and
returns ``(h_1:T (B, T, H), h_T (1, B, H))``. Without gradients, and on a GPU (where cuDNN's fused
GRU is faster than any per-step loop), it calls ``nn.GRU``'s operator.
Double backward is not supported.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn


def _run(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
         keep: bool) -> tuple[Tensor, Tensor, Tensor]:
    """The forward recursion. Returns the states h_0:T (T + 1, B, H), ``[r_t, z_t, W_hn h_{t-1}
    + b_hn]`` (T, B, 3H) and n_t (T, B, H) of every step if ``keep``, else of the last one."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    gi = torch.addmm(b_ih, x.reshape(B * T, -1), w_ih.t()).view(B, T, 3 * H)  # all steps
    hs = x.new_empty(T + 1, B, H)
    hs[0] = h0
    g = x.new_empty(T if keep else 1, B, 3 * H)
    n = x.new_empty(T if keep else 1, B, H)
    w_hh_t = w_hh.t()

    def per_step(t: Tensor) -> list[Tensor]:  # views of a buffer, one per step (unbind is cheap)
        return list(t.unbind(0)) if keep else [t[0]] * T

    steps = zip(gi[..., : 2 * H].unbind(1), gi[..., 2 * H :].unbind(1), hs[:-1].unbind(0),
                hs[1:].unbind(0), per_step(g), per_step(g[..., : 2 * H]), per_step(g[..., :H]),
                per_step(g[..., H : 2 * H]), per_step(g[..., 2 * H :]), per_step(n), strict=True)
    for gi_rz, gi_n, h, h_t, g_t, rz, r, z, gh_n, n_t in steps:
        torch.addmm(b_hh, h, w_hh_t, out=g_t)  # W_h h_{t-1} + b_h
        rz.add_(gi_rz).sigmoid_()  # r_t, z_t
        torch.addcmul(gi_n, r, gh_n, out=n_t).tanh_()  # n_t
        torch.lerp(n_t, h, z, out=h_t)  # h_t = n_t + z_t (h_{t-1} - n_t)
    return hs, g, n


class _GRUSequence(torch.autograd.Function):
    """``(h_1:T, h_T)`` of the GRU over x (B, T, I) from h_0 (B, H); see the module docstring."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                b_hh: Tensor) -> tuple[Tensor, Tensor]:
        hs, g, n = _run(x, h0, w_ih, w_hh, b_ih, b_hh, keep=True)
        ctx.save_for_backward(x, w_ih, w_hh, hs, g, n)
        return hs[1:].transpose(0, 1).contiguous(), hs[-1].clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_last: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: a graph of this backward was asked for
            raise RuntimeError("FusedGRU has no double backward: its backward pass is not "
                               "differentiable (create_graph=True)")
        x, w_ih, w_hh, hs, g, n = ctx.saved_tensors
        T, B, H = n.shape
        dg = x.new_empty(T, B, 3 * H)  # d(W_h h_{t-1} + b_h): the r, z, n parts
        da_n = x.new_empty(T, B, H)  # d(W_in x_t + b_in), the n pre-activation
        carry = d_last.clone()  # dL/dh_t from later steps and from h_T
        dh, dhz, tmp = x.new_empty(B, H), x.new_empty(B, H), x.new_empty(B, 2 * H)

        def by_step(t: Tensor, lo: int, hi: int) -> tuple[Tensor, ...]:
            return t[..., lo * H : hi * H].unbind(0)

        steps = zip(d_out.unbind(1), hs[:-1].unbind(0), by_step(g, 0, 1), by_step(g, 1, 2),
                    by_step(g, 0, 2), by_step(g, 2, 3), n.unbind(0), dg.unbind(0),
                    by_step(dg, 0, 1), by_step(dg, 1, 2), by_step(dg, 0, 2), by_step(dg, 2, 3),
                    da_n.unbind(0), strict=True)
        for d_out_t, h_prev, r, z, rz, gh_n, n_t, dg_t, dr, dz, drz, dgh_n, dn in reversed(
                list(steps)):
            torch.add(carry, d_out_t, out=dh)  # dL/dh_t
            torch.sub(h_prev, n_t, out=dz).mul_(dh)  # dL/dz_t = dh (h_{t-1} - n_t)
            torch.mul(dh, z, out=dhz)
            torch.sub(dh, dhz, out=dn)  # dL/dn_t = dh (1 - z_t)
            dn.addcmul_(torch.mul(dn, n_t, out=tmp[:, :H]), n_t, value=-1)  # * (1 - n_t^2)
            torch.mul(dn, gh_n, out=dr)  # dL/dr_t = dL/da_n (W_hn h_{t-1} + b_hn)
            torch.mul(dn, r, out=dgh_n)
            drz.mul_(torch.addcmul(rz, rz, rz, value=-1, out=tmp))  # * sigma'
            torch.addmm(dhz, dg_t, w_hh, out=carry)  # dL/dh_{t-1} = z_t dh + dg_t W_h
        need = ctx.needs_input_grad
        dg_all = dg.view(T * B, 3 * H)
        d_w_hh = dg_all.t().mm(hs[:-1].view(T * B, H)) if need[3] else None
        d_b_hh = dg_all.sum(0) if need[5] else None
        dg[..., 2 * H :] = da_n  # dg is now d(W_i x_t + b_i)
        dx = dg_all.mm(w_ih).view(T, B, -1).transpose(0, 1) if need[0] else None
        d_w_ih = dg_all.t().mm(x.transpose(0, 1).reshape(T * B, -1)) if need[2] else None
        d_b_ih = dg_all.sum(0) if need[4] else None
        return dx, (carry if need[1] else None), d_w_ih, d_w_hh, d_b_ih, d_b_hh


class FusedGRU(nn.Module):
    """``nn.GRU(input_size, hidden_size, batch_first=True)`` with a fused sequence backward.

    Same parameters (``weight_ih_l0`` (3H, I), ``weight_hh_l0`` (3H, H), ``bias_ih_l0``,
    ``bias_hh_l0``), same initialisation, same results; one layer, batch first, with biases.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 batch_first: bool = True) -> None:
        super().__init__()
        if num_layers != 1 or not batch_first:
            raise ValueError("FusedGRU is one layer with batch-first input")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[1] == 0:
            raise ValueError(f"FusedGRU expects input (B, T >= 1, I), got {tuple(x.shape)}")
        B, H = x.shape[0], self.hidden_size
        if hx is not None and tuple(hx.shape) != (1, B, H):
            raise ValueError(f"FusedGRU expects h_0 (1, {B}, {H}), got {tuple(hx.shape)}")
        h0 = x.new_zeros(B, H) if hx is None else hx[0]
        x = x.contiguous()
        params = (self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, h0, *params))
        if grad and not x.is_cuda:
            out, last = _GRUSequence.apply(x, h0, *params)
            return out, last.unsqueeze(0)
        # Without gradients, and on a GPU (cuDNN's fused kernels, with autograd): nn.GRU's own
        # operator. cuDNN copies the four weights into one block at each call here, and says so.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not part of single contiguous chunk")
            return torch.gru(x, h0.unsqueeze(0), params, has_biases=True, num_layers=1,
                             dropout=0.0, train=self.training, bidirectional=False,
                             batch_first=True)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first=True"

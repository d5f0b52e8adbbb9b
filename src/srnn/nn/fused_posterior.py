"""The z-recursion of a Gaussian posterior with one hidden layer, as one autograd node.

For T steps, from z_0 and per-step contexts c_t that do not depend on z (computed for all steps
before the loop), with the heads of :class:`srnn.nn.layers.GaussianHead` (``separate=True``)::

    a_t      = W_z z_{t-1} + c_t                      first layer(s), c_t = W_c (d_t or a_t) + b
    h_t      = act(a_t)                               h_t = [h^p_mu, h^q_mu, h^q_sigma] (prior) or
                                                      [h^q_mu, h^q_sigma] (no prior in the loop)
    p_loc_t  = W_pm h^p_mu + b_pm                     prior mean (SRNN eq. 3), when in the loop
    q_loc_t  = p_loc_t + W_qm h^q_mu + b_qm           residual mean (Res_q, SRNN eq. 12), or
                                                      W_qm h^q_mu + b_qm without the prior
    q_scale  = softplus(min(W_qs h^q_sigma + b_qs, MAX_STD)) + min_std          (eq. 11)
    z_t      = q_loc_t + q_scale_t * eps_t            reparameterised draw, eps_t ~ N(0, I)

The result is what the model's step interface computes step by step (the bounds' generic z-loop),
up to rounding; what changes is the bookkeeping. The forward pass runs a dozen operators per step on
preallocated (T, B, ...) buffers and records no per-step autograd graph. The backward pass is a
reverse loop of a few element-wise operators and three or four products of B rows per step; the
activation's and the softplus's derivatives are formed for all steps at once before it, and the
gradients of every weight, bias and context come after it as products over all T * B rows. Only
what needs z_t inside the loop is in it: the prior depends on z_{t-1} but not on z_t, so the
model computes the prior the bound reads for all steps afterwards (with Res_q its mean also runs
inside, where q's mean adds to it).

Double backward is not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srnn.nn.layers import MAX_STD, ClippedLeakyReLU


def supports(act: nn.Module) -> bool:
    """Whether :func:`activation_grad` knows ``act``'s derivative."""
    if isinstance(act, ClippedLeakyReLU):
        return act.leak > 0
    return isinstance(act, nn.ReLU | nn.Tanh | nn.Identity)


def activation_grad(act: nn.Module, a: Tensor) -> Tensor:
    """d act(a) / d a, elementwise, as autograd forms it for ``act`` (see :func:`supports`)."""
    if isinstance(act, ClippedLeakyReLU):  # leaky_relu(hardtanh(a, lo, clip)), lo = -clip/leak
        lo = -act.clip / act.leak
        inside = (a > lo) & (a < act.clip)  # hardtanh passes the gradient strictly inside
        slope = torch.full_like(a, act.leak).masked_fill_(a > 0, 1.0)  # leaky_relu's slope
        return slope.mul_(inside)
    if isinstance(act, nn.ReLU):
        return (a > 0).to(a.dtype)
    if isinstance(act, nn.Tanh):
        return 1 - torch.tanh(a).square()
    if isinstance(act, nn.Identity):
        return torch.ones_like(a)
    raise TypeError(f"no derivative known for {type(act).__name__}")


def _needs_grad(*tensors: Tensor) -> bool:
    """Whether a backward pass can follow: grad mode on and some input requiring a gradient
    (inside ``Function.forward`` grad mode is always off, so this is decided before)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _check_steps(eps: Tensor, contexts: Sequence[Tensor]) -> None:
    if any(c.shape[:2] != eps.shape[:2] for c in contexts):
        raise ValueError(f"the fused z-recursion runs over every precomputed step: noise "
                         f"{tuple(eps.shape)} against contexts "
                         f"{[tuple(c.shape) for c in contexts]}")


class _Recursion(torch.autograd.Function):
    """See :func:`gaussian_recursion`; time-major buffers inside."""

    @staticmethod
    def forward(ctx: Any, z0: Tensor, eps: Tensor, act: nn.Module, min_std: float, prior: bool,
                blocks: int, keep: bool, *tensors: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        contexts, w_zs, heads = tensors[:blocks], tensors[blocks:2 * blocks], tensors[2 * blocks:]
        B, T, Z = eps.shape
        cuts = [0]
        for w in w_zs:
            cuts.append(cuts[-1] + w.shape[0])
        H = cuts[-1] // (3 if prior else 2)
        # keep: a backward pass will read a and s of every step (else one step's buffers)
        a = eps.new_empty(T if keep else 1, B, cuts[-1])  # pre-activations a_t
        s = eps.new_empty(T if keep else 1, B, Z)  # W_qs h^q_sigma + b_qs
        zs = eps.new_empty(T + 1, B, Z)  # z_0:T
        q_loc, q_scale = eps.new_empty(T, B, Z), eps.new_empty(T, B, Z)
        p_loc = eps.new_empty(T, B, Z) if prior else eps.new_empty(0)
        zs[0] = z0
        w_qm, b_qm, w_qs, b_qs = heads[-4:]
        off = H if prior else 0
        for t in range(T):
            a_t, s_t = a[t if keep else 0], s[t if keep else 0]
            for c, w, lo, hi in zip(contexts, w_zs, cuts, cuts[1:], strict=False):
                torch.addmm(c[:, t], zs[t], w.t(), out=a_t[:, lo:hi])  # W_z z_{t-1} + c_t
            h = act(a_t)
            torch.addmm(b_qm, h[:, off:off + H], w_qm.t(), out=q_loc[t])  # W_qm h + b_qm
            if prior:
                torch.addmm(heads[1], h[:, :H], heads[0].t(), out=p_loc[t])  # p_loc, eq. 3
                q_loc[t] += p_loc[t]  # Res_q, eq. 12
            torch.addmm(b_qs, h[:, off + H:], w_qs.t(), out=s_t)
            sc = torch.add(F.softplus(s_t.clamp(max=MAX_STD)), min_std, out=q_scale[t])
            torch.addcmul(q_loc[t], sc, eps[:, t], out=zs[t + 1])  # z_t = q_loc + q_scale eps
        ctx.act, ctx.prior, ctx.H, ctx.blocks = act, prior, H, blocks
        ctx.save_for_backward(eps, a, s, zs, *w_zs, *heads)
        return zs[1:].clone(), q_loc, q_scale, p_loc

    @staticmethod
    def backward(ctx: Any, d_z: Tensor | None, d_q_loc: Tensor | None,
                 d_q_scale: Tensor | None, d_p_loc: Tensor | None) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError("the fused z-recursion has no double backward (create_graph)")
        eps, a, s, zs, *rest = ctx.saved_tensors
        act, prior, H, blocks = ctx.act, ctx.prior, ctx.H, ctx.blocks
        w_zs, heads = rest[:blocks], rest[blocks:]
        w_z = torch.cat(w_zs) if blocks > 1 else w_zs[0]
        T, B, Z = a.shape[0], a.shape[1], eps.shape[2]
        w_qm, w_qs = heads[-4], heads[-2]
        off = H if prior else 0
        zeros = eps.new_zeros(T, B, Z)
        d_z, d_q_loc, d_q_scale = (zeros if g is None else g for g in (d_z, d_q_loc, d_q_scale))
        if prior and d_p_loc is None:
            d_p_loc = zeros
        act_d = activation_grad(act, a)  # all steps at once
        sig = torch.sigmoid(s) * (s <= MAX_STD)  # d softplus(min(s, MAX_STD)) / d s
        d_a = torch.empty_like(a)
        d_s = torch.empty_like(s)  # gradients of the head pre-activations, all steps
        d_ql = torch.empty_like(s)
        d_pl = torch.empty_like(s) if prior else None
        carry = eps.new_zeros(B, Z)  # dL/dz_t through step t + 1
        for t in range(T - 1, -1, -1):
            g = carry.add_(d_z[t])  # dL/dz_t
            torch.add(g, d_q_loc[t], out=d_ql[t])
            d_sc = torch.addcmul(d_q_scale[t], g, eps[:, t])
            torch.mul(d_sc, sig[t], out=d_s[t])
            d_h = d_a[t]
            torch.mm(d_ql[t], w_qm, out=d_h[:, off:off + H])
            torch.mm(d_s[t], w_qs, out=d_h[:, off + H:])
            if prior:
                assert d_pl is not None and d_p_loc is not None
                torch.add(d_ql[t], d_p_loc[t], out=d_pl[t])
                torch.mm(d_pl[t], heads[0], out=d_h[:, :H])
            d_h.mul_(act_d[t])  # dL/da_t
            carry = torch.mm(d_h, w_z)  # dL/dz_{t-1}
        need = ctx.needs_input_grad
        rows = T * B
        d_a2 = d_a.view(rows, -1)
        z_prev = zs[:-1].reshape(rows, Z)
        h = act(a).view(rows, -1)
        d_ctx, d_w = [], []
        lo = 0
        for i, w in enumerate(w_zs):
            hi = lo + w.shape[0]
            d_ctx.append(d_a[..., lo:hi].transpose(0, 1) if need[7 + i] else None)
            d_w.append(d_a2[:, lo:hi].t().mm(z_prev) if need[7 + blocks + i] else None)
            lo = hi

        def head(d: Tensor, lo: int) -> tuple[Tensor, Tensor]:
            d2 = d.view(rows, Z)
            return d2.t().mm(h[:, lo:lo + H]), d2.sum(0)

        grads = [*head(d_ql, off), *head(d_s, off + H)]
        if prior:
            assert d_pl is not None
            grads = [*head(d_pl, 0), *grads]
        return (carry if need[0] else None, None, None, None, None, None, None, *d_ctx, *d_w,
                *grads)


def gaussian_recursion(z0: Tensor, contexts: Sequence[Tensor], eps: Tensor,
                       w_zs: Sequence[Tensor], act: nn.Module, min_std: float,
                       q_heads: tuple[Tensor, Tensor, Tensor, Tensor],
                       p_head: tuple[Tensor, Tensor] | None = None
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """z_1:T, q_loc, q_scale and (with ``p_head``) p_loc, each (B, T, Z), of the recursion in
    the module docstring.

    ``z0`` (B, Z); ``eps`` (B, T, Z); c_t and W_z in blocks: ``contexts[i]`` (B, T, n_i) and
    ``w_zs[i]`` (n_i, Z), which side by side give c_t and W_z in the order [prior mean | q mean
    | q sigma] (3 H columns) or [q mean | q sigma] (2 H, ``p_head`` None), so that a model's
    precomputed contexts are read where they lie; ``q_heads`` = (W_qm, b_qm, W_qs, b_qs) and
    ``p_head`` = (W_pm, b_pm), weights (Z, H). ``act`` must satisfy :func:`supports`.
    """
    if len(contexts) != len(w_zs):
        raise ValueError("one weight block per context block")
    prior = p_head is not None
    tensors = (*contexts, *w_zs, *(p_head or ()), *q_heads)
    _check_steps(eps, contexts)
    z, q_loc, q_scale, p_loc = _Recursion.apply(
        z0, eps, act, min_std, prior, len(contexts), _needs_grad(z0, *tensors), *tensors)
    z, q_loc, q_scale = (v.transpose(0, 1) for v in (z, q_loc, q_scale))
    return z, q_loc, q_scale, (p_loc.transpose(0, 1) if prior else None)


class _GRURecursion(torch.autograd.Function):
    """See :func:`gru_recursion`; time-major buffers inside."""

    @staticmethod
    def forward(ctx: Any, h0: Tensor, c_enc: Tensor, c_cell: Tensor, eps: Tensor,
                act: nn.Module, min_std: float, keep: bool, w_hh: Tensor, b_h: Tensor,
                w_eo: Tensor,
                b_eo: Tensor, w_f: Tensor, b_f: Tensor, w_cz: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        B, T, Z = eps.shape
        E, H3 = c_enc.shape[2], c_cell.shape[2]
        H = H3 // 3
        n_keep = T if keep else 1  # keep: a backward pass will read every step's buffers
        hs = eps.new_empty(T + 1, B, H)  # h_0:T
        gh = eps.new_empty(n_keep, B, E + H3)  # [W_eh h + c_enc | W_ch h + b_ch]
        s = eps.new_empty(n_keep, B, Z)  # pre-softplus of q_scale
        f_pre = eps.new_empty(n_keep, B, w_f.shape[0])  # W_f z + b_f
        gates = eps.new_empty(n_keep, B, H3)  # r, u, n
        zs, q_loc, q_scale = (eps.new_empty(T, B, Z) for _ in range(3))
        hs[0] = h0
        w_hh_t, w_eo_t, w_f_t, w_cz_t = w_hh.t(), w_eo.t(), w_f.t(), w_cz.t()
        bias = torch.cat([torch.zeros_like(c_enc[0, 0]), b_h])
        for t in range(T):
            k = t if keep else 0
            g_t = torch.addmm(bias, hs[t], w_hh_t, out=gh[k])
            e = act(g_t[:, :E].add_(c_enc[:, t]))  # eq. 9: phi_enc's hidden layer
            mu_s = torch.addmm(b_eo, e, w_eo_t)
            q_loc[t] = mu_s[:, :Z]
            s[k] = mu_s[:, Z:]
            sc = torch.add(F.softplus(s[k].clamp(max=MAX_STD)), min_std, out=q_scale[t])
            z = torch.addcmul(q_loc[t], sc, eps[:, t], out=zs[t])
            f = act(torch.addmm(b_f, z, w_f_t, out=f_pre[k]))  # phi_z(z_t)
            i = torch.addmm(c_cell[:, t], f, w_cz_t)  # eq. 7: the GRU's input product
            h_r, h_u, h_n = g_t[:, E:].chunk(3, dim=-1)
            ru = gates[k, :, : 2 * H]
            torch.add(i[:, : 2 * H], g_t[:, E:E + 2 * H], out=ru).sigmoid_()
            n = torch.addcmul(i[:, 2 * H:], ru[:, :H], h_n, out=gates[k, :, 2 * H:]).tanh_()
            torch.lerp(n, hs[t], ru[:, H:], out=hs[t + 1])  # h_t = n + u (h_{t-1} - n)
        ctx.act, ctx.E = act, E
        ctx.save_for_backward(eps, hs, gh, s, f_pre, gates, zs, w_hh, w_eo, w_f, w_cz)
        return zs, q_loc, q_scale, hs[:-1].clone(), hs[-1].clone()

    @staticmethod
    def backward(ctx: Any, d_z: Tensor | None, d_q_loc: Tensor | None,
                 d_q_scale: Tensor | None, d_h_prev: Tensor | None, d_h_last: Tensor | None
                 ) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError("the fused z-recursion has no double backward (create_graph)")
        eps, hs, gh, s, f_pre, gates, zs, w_hh, w_eo, w_f, w_cz = ctx.saved_tensors
        act, E = ctx.act, ctx.E
        T, B, Z = zs.shape
        H = hs.shape[2]
        zeros_z, zeros_h = eps.new_zeros(T, B, Z), eps.new_zeros(T, B, H)
        d_z, d_q_loc, d_q_scale = (zeros_z if g is None else g for g in (d_z, d_q_loc, d_q_scale))
        d_h_prev = zeros_h if d_h_prev is None else d_h_prev
        act_e = activation_grad(act, gh[..., :E])  # all steps at once
        act_f = activation_grad(act, f_pre)
        sig = torch.sigmoid(s) * (s <= MAX_STD)
        d_gh = torch.empty_like(gh)  # d[W_eh h + c_enc | W_ch h + b_ch]
        d_i = torch.empty_like(gates)  # d(input product of the GRU)
        d_f = torch.empty_like(f_pre)  # d(W_f z + b_f)
        d_mu_s = eps.new_empty(T, B, 2 * Z)  # d[q_loc | s]
        carry = eps.new_zeros(B, H) if d_h_last is None else d_h_last.clone()  # dL/dh_t
        for t in range(T - 1, -1, -1):
            r, u, n = gates[t].chunk(3, dim=-1)
            h_n = gh[t, :, E + 2 * H:]
            d_n = carry - carry * u  # h_t = n + u (h_{t-1} - n)
            d_u = carry * (hs[t] - n)
            d_in = d_i[t, :, 2 * H:]
            torch.mul(d_n, 1 - n * n, out=d_in)  # d(i_n + r h_n)
            d_r = d_in * h_n
            torch.mul(d_r, r * (1 - r), out=d_i[t, :, :H])
            torch.mul(d_u, u * (1 - u), out=d_i[t, :, H:2 * H])
            dg = d_gh[t]
            dg[:, E:E + 2 * H] = d_i[t, :, : 2 * H]
            torch.mul(d_in, r, out=dg[:, E + 2 * H:])
            # phi_z and the draw
            torch.mm(d_i[t], w_cz, out=d_f[t]).mul_(act_f[t])
            g = torch.addmm(d_z[t], d_f[t], w_f)  # dL/dz_t
            torch.add(d_q_loc[t], g, out=d_mu_s[t, :, :Z])
            torch.mul(torch.addcmul(d_q_scale[t], g, eps[:, t]), sig[t], out=d_mu_s[t, :, Z:])
            torch.mm(d_mu_s[t], w_eo, out=dg[:, :E]).mul_(act_e[t])  # d(phi_enc's layer)
            carry = torch.addmm(d_h_prev[t], dg, w_hh).addcmul_(carry, u)  # dL/dh_{t-1}
        need = ctx.needs_input_grad
        rows = T * B
        flat = lambda v: v.reshape(rows, v.shape[-1])  # noqa: E731
        e = act(gh[..., :E])
        f = act(f_pre)
        d_gh2, d_mu2, d_f2, d_i2 = flat(d_gh), flat(d_mu_s), flat(d_f), flat(d_i)
        return (carry if need[0] else None,
                d_gh[..., :E].transpose(0, 1) if need[1] else None,
                d_i.transpose(0, 1) if need[2] else None, None, None, None, None,
                d_gh2.t().mm(flat(hs[:-1])) if need[7] else None,
                d_gh2[:, E:].sum(0) if need[8] else None,
                d_mu2.t().mm(flat(e)) if need[9] else None,
                d_mu2.sum(0) if need[10] else None,
                d_f2.t().mm(flat(zs)) if need[11] else None,
                d_f2.sum(0) if need[12] else None,
                d_i2.t().mm(flat(f)) if need[13] else None)


def gru_recursion(h0: Tensor, c_enc: Tensor, c_cell: Tensor, eps: Tensor, act: nn.Module,
                  min_std: float, w_eh: Tensor, w_ch: Tensor, b_ch: Tensor, w_eo: Tensor,
                  b_eo: Tensor, w_f: Tensor, b_f: Tensor, w_cz: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The VRNN's z-loop (Chung et al. 2015, eq. 7 and 9) as one autograd node::

        e_t = act(W_eh h_{t-1} + c^enc_t)                   phi_enc's hidden layer
        [q_loc_t, s_t] = W_eo e_t + b_eo,  q_scale_t = softplus(min(s_t, MAX_STD)) + min_std
        z_t = q_loc_t + q_scale_t * eps_t
        f_t = act(W_f z_t + b_f)                            phi_z
        h_t = GRU(h_{t-1}; input product c^cell_t + W_cz f_t, recurrent W_ch h_{t-1} + b_ch)

    with the gates of :class:`srnn.nn.recurrent.SplitInputGRUCell`. ``h0`` (B, H); ``c_enc``
    (B, T, E) and ``c_cell`` (B, T, 3 H) the contexts computed before the loop; ``eps`` (B, T,
    Z). Returns z, q_loc, q_scale (B, T, Z), h_0:T-1 (B, T, H) (what the prior and the
    emission of each step read) and h_T (B, H).
    """
    w_hh = torch.cat([w_eh, w_ch])  # one product of h_{t-1} per step
    _check_steps(eps, (c_enc, c_cell))
    params = (w_hh, b_ch, w_eo, b_eo, w_f, b_f, w_cz)
    z, q_loc, q_scale, h_prev, h_last = _GRURecursion.apply(
        h0, c_enc, c_cell, eps, act, min_std, _needs_grad(h0, c_enc, c_cell, *params), *params)
    return (z.transpose(0, 1), q_loc.transpose(0, 1), q_scale.transpose(0, 1),
            h_prev.transpose(0, 1), h_last)

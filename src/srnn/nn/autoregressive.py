"""Autoregressive emissions for binary x_t: MADE and NADE, dependence between the notes of a step.

The factorised Bernoulli emission makes the D values of x_t independent given the model's
emission features h_t. These emissions instead factor p(x_t | h_t) along a fixed order
o = (o_1, ..., o_D) of the D dimensions (by default low to high pitch, o_k = k):

    p(x_t | h_t) = prod_k Bernoulli(x_{t,o_k}; sigmoid(l_k(x_{t,o_<k}, h_t)))

  * MADE (Germain, Gregor, Murray, Larochelle, ICML 2015, "MADE: Masked Autoencoder for
    Distribution Estimation"; the "masked MLP" emission of Lai, Dai, Yang, Yoo, NeurIPS 2019):
    l = a masked MLP over x_t, with h_t entering every hidden layer unmasked;
  * NADE (Larochelle & Murray, AISTATS 2011, "The Neural Autoregressive Distribution Estimator"),
    its biases b and c read from h_t as in the RNN-NADE (Boulanger-Lewandowski, Bengio,
    Vincent, ICML 2012): a_1 = c(h), a_{k+1} = a_k + W[:, k] x_{o_k},
    l_k = b_k(h) + V_k . sigmoid(a_k).

Each emission module's ``distribution(h)`` is a :class:`torch.distributions.Distribution`
(batch shape h.shape[:-1], event shape (D,)) whose ``log_prob`` is teacher-forced, all D
conditionals of all rows in one pass, and whose ``sample`` runs the D conditionals in order.
Both work in positions k = 1..D (the dimensions permuted into the order), the distribution
permutes in and out. The marginal means E[x_{t,d} | h_t] have no closed form: ``mean`` is a
Monte-Carlo estimate (see :class:`AutoregressiveBernoulli`), and ``variance`` = mean (1 - mean),
exact for a binary marginal given its mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from srnn.nn.step_linear import StepLinear

Order = str | Sequence[int]  # "ascending", "descending", "random:SEED" or a permutation of 0..D-1

MADE_HIDDEN = 500  # default units per masked hidden layer of MADE (~5.7 per degree for 88 notes)
MADE_LAYERS = 1  # default masked hidden layers of MADE
NADE_HIDDEN = 100  # default units H of NADE's hidden layer (its cost is O(D H) per row)


def autoregressive_order(order: Order, dim: int) -> Tensor:
    """The order o as a permutation (o[k] = the dimension at position k, long (dim,)).

    ``"ascending"``: dimension 0 first (low to high pitch for piano rolls); ``"descending"``:
    the reverse; ``"random:SEED"``: ``torch.randperm(dim)`` from a generator seeded SEED (a
    fixed order, the same on every machine for a given SEED); or the permutation itself. On
    the CPU whatever the default device (models are also built on the meta device to count
    their parameters)."""
    cpu = torch.device("cpu")
    if isinstance(order, str):
        if order == "ascending":
            return torch.arange(dim, device=cpu)
        if order == "descending":
            return torch.arange(dim - 1, -1, -1, device=cpu)
        kind, _, seed = order.partition(":")
        if kind == "random" and seed.strip().lstrip("-").isdigit():
            return torch.randperm(dim, generator=torch.Generator().manual_seed(int(seed)),
                                  device=cpu)
        raise ValueError(f"unknown order {order!r}; choose ascending, descending, random:SEED "
                         f"or a permutation of 0..{dim - 1}")
    perm = torch.as_tensor(list(order), dtype=torch.long, device=cpu)
    if perm.shape != (dim,) or not torch.equal(perm.sort().values,
                                               torch.arange(dim, device=cpu)):
        raise ValueError(f"an order must be a permutation of 0..{dim - 1}, not {list(order)}")
    return perm


class _Ordered(nn.Module):
    """What MADE and NADE share: D, the order o and its inverse (buffers, not saved: the
    config rebuilds them), and the emission's ``binary`` flag."""

    binary = True
    name: str  # as in srnn.nn.emissions.EMISSIONS

    def __init__(self, x_dim: int, order: Order) -> None:
        super().__init__()
        if x_dim < 1:
            raise ValueError(f"an autoregressive emission needs x_dim >= 1, not {x_dim}")
        self.x_dim = x_dim
        perm = autoregressive_order(order, x_dim)
        self.natural = bool(torch.equal(perm, torch.arange(x_dim, device=perm.device)))
        self.register_buffer("order", perm, persistent=False)  # position k -> dimension o_k
        self.register_buffer("rank", perm.argsort(), persistent=False)  # dimension -> position

    def to_positions(self, x: Tensor) -> Tensor:
        """x (..., D) in dimension order -> (..., D) in the order o."""
        return x if self.natural else x.index_select(-1, self.order)

    def to_dimensions(self, v: Tensor) -> Tensor:
        """(..., D) in the order o -> dimension order."""
        return v if self.natural else v.index_select(-1, self.rank)

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        """Log-likelihood summed over the data dimension: (..., D) -> (...)."""
        return self.distribution(h).log_prob(x)

    def distribution(self, h: Tensor) -> AutoregressiveBernoulli:
        raise NotImplementedError


class AutoregressiveBernoulli(Distribution):
    """p(x) = prod_k Bernoulli(x_{o_k}; sigmoid(l_k(x_{o_<k}))) over binary x (..., D), the
    conditioning already in the logits l_k. Subclasses give the teacher-forced logits of all
    positions (:meth:`_position_logits`) and the recursion the sampler runs (:meth:`_start`,
    :meth:`_logit`, :meth:`_advance`), all in positions.

    ``mean`` is a Monte-Carlo estimate of E[x_d]: the average over ``MEAN_SAMPLES`` (32)
    ancestral samples, drawn from the global random generator under ``torch.no_grad()``, of
    the conditional probabilities sigmoid(l_k) along each sample (the Rao-Blackwellised form of
    averaging the samples themselves: the same expectation, less variance). It is computed once
    per distribution; ``variance`` is mean (1 - mean).
    """

    MEAN_SAMPLES = 32
    MEAN_ROWS = 1 << 16  # rows sampled at once for the mean (bounds its memory)
    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, emission: _Ordered, batch_shape: torch.Size,
                 validate_args: bool | None = None) -> None:
        self.emission = emission
        self._mean: Tensor | None = None
        super().__init__(batch_shape, torch.Size([emission.x_dim]), validate_args)

    # -- what a subclass gives, in positions ---------------------------------------------
    def _position_logits(self, x: Tensor) -> Tensor:
        """l_k(x_<k) of every position k at once, x (..., D) in positions (teacher forcing)."""
        raise NotImplementedError

    def _start(self, shape: torch.Size) -> object:
        """The sampler's state before position 1, for rows of ``shape`` (sample + batch)."""
        raise NotImplementedError

    def _logit(self, state: object, k: int, x: Tensor) -> Tensor:
        """l_k, (shape), from the state after positions < k (x holds them, in positions)."""
        raise NotImplementedError

    def _advance(self, state: object, k: int, x: Tensor) -> object:
        """The state once x_k (in x[..., k]) is drawn."""
        raise NotImplementedError

    # -- the distribution ------------------------------------------------------------------
    def conditional_logits(self, x: Tensor) -> Tensor:
        """logit p(x_d = 1 | the values before d in the order) of every d, (..., D) in
        dimension order, for x (..., D) (broadcast against the batch shape)."""
        em = self.emission
        return em.to_dimensions(self._position_logits(em.to_positions(x)))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args and not ((value == 0) | (value == 1)).all():
            raise ValueError(f"the {self.emission.name} emission models binary 0/1 data and x "
                             "has other values; use the gauss or gmm emission for real values")
        logits = self.conditional_logits(value)
        return -F.binary_cross_entropy_with_logits(
            logits, value.expand_as(logits), reduction="none").sum(-1)

    def _ancestral(self, sample_shape: torch.Size) -> tuple[Tensor, Tensor]:
        """x ~ p (sample_shape + batch + (D,)) and the conditional probabilities
        sigmoid(l_k(x_<k)) along it, both in dimension order; global generator, no gradient."""
        shape = torch.Size(sample_shape) + self.batch_shape
        D = self.emission.x_dim
        with torch.no_grad():
            state = self._start(shape)
            x = self._zeros(shape + (D,))
            probs = torch.empty_like(x)
            for k in range(D):  # positions in order: l_k reads only x_<k
                p = torch.sigmoid(self._logit(state, k, x))
                probs[..., k] = p
                x[..., k] = (torch.rand_like(p) < p).to(x.dtype)
                if k < D - 1:
                    state = self._advance(state, k, x)
        em = self.emission
        return em.to_dimensions(x), em.to_dimensions(probs)

    def _zeros(self, shape: torch.Size) -> Tensor:
        raise NotImplementedError

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        return self._ancestral(torch.Size(sample_shape))[0]

    @property
    def mean(self) -> Tensor:
        """Monte-Carlo estimate of E[x] (see the class docstring), batch + (D,)."""
        if self._mean is None:
            n, rows = self.MEAN_SAMPLES, max(1, math.prod(self.batch_shape))
            chunk = max(1, min(n, self.MEAN_ROWS // rows))
            total = None
            for start in range(0, n, chunk):
                p = self._ancestral(torch.Size([min(chunk, n - start)]))[1].sum(0)
                total = p if total is None else total + p
            self._mean = total / n
        return self._mean

    @property
    def variance(self) -> Tensor:
        """mean (1 - mean): a binary marginal's variance given its (estimated) mean."""
        m = self.mean
        return m * (1 - m)


# -- MADE ---------------------------------------------------------------------------------------

class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 mask M (out, in), MADE's masked layer; the
    mask is a buffer rebuilt from the options, not saved."""

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        super().__init__(mask.shape[1], mask.shape[0], bias)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


def made_degrees(units: int, x_dim: int) -> Tensor:
    """The degree m of each hidden unit, the number of leading positions it may see (MADE's
    m(k)): spread evenly over 1..D-1, non-decreasing in the unit index (so the units of one
    degree are a contiguous block); 0 (h alone) when D = 1."""
    cpu = torch.device("cpu")
    if x_dim == 1:
        return torch.zeros(units, dtype=torch.long, device=cpu)
    return 1 + torch.arange(units, device=cpu) * (x_dim - 1) // units


class MADEEmission(_Ordered):
    """p(x_t | h_t) = prod_k Bernoulli(x_{o_k}; sigmoid(l_k)), l = a masked MLP over x_t in the
    order o (MADE, Germain et al. 2015), conditioned on h_t in every hidden layer:

        a^1 = relu((W^1 * M^1) x + C^1 h)                 M^1_{uj} = [m^1_u >= j]
        a^l = relu((W^l * M^l) a^{l-1} + C^l h)           M^l_{uv} = [m^l_u >= m^{l-1}_v]
        l   = (W^o * M^o) a^L + (A * M^A) x + C^o h       M^o_{ku} = [k > m^L_u], M^A_{kj} = [k > j]

    with positions j, k in 1..D, x in the order o, hidden degrees m (:func:`made_degrees`),
    ReLU units and the biases in the C-products. So l_k reads x_{o_<k} and h only (MADE's
    autoregressive property). A is the direct connection x -> output. ``layers`` masked hidden
    layers of ``hidden`` units (MADE_LAYERS, MADE_HIDDEN by default).

    Teacher-forced: one product of x for [a^1, direct] pre-activations, one per further layer,
    one of h (``cond``, all C^l at once, a :class:`StepLinear` used inside the particle loops).
    Sampling: after x_k is drawn, the units of degree k of each layer are computed (they are
    final), and l_{k+1} from the units of degree <= k: one network's worth of products per row
    in D blocks.
    """

    name = "made"

    def __init__(self, in_dim: int, x_dim: int, hidden: int = MADE_HIDDEN,
                 layers: int = MADE_LAYERS, order: Order = "ascending") -> None:
        super().__init__(x_dim, order)
        if layers < 1 or hidden < 1:
            raise ValueError(f"MADE needs at least one hidden layer of one unit, not {layers} "
                             f"of {hidden}")
        self.hidden, self.layers = hidden, layers
        D, H = x_dim, hidden
        m = made_degrees(H, D)  # on the CPU, as the positions
        pos = torch.arange(1, D + 1, device=m.device)
        self.register_buffer("degrees", m, persistent=False)
        # Input layer: [a^1 pre-activation (H), direct logits (D)] from x in one product.
        self.inp = MaskedLinear(torch.cat([m[:, None] >= pos[None, :],  # M^1
                                           pos[:, None] > pos[None, :]]),  # M^A
                                bias=False)
        self.hiddens = nn.ModuleList(MaskedLinear(m[:, None] >= m[None, :], bias=False)
                                     for _ in range(layers - 1))  # M^l, l >= 2
        self.out = MaskedLinear(pos[:, None] > m[None, :], bias=False)  # M^o
        self.cond = StepLinear(in_dim, layers * H + D)  # [C^1 h, ..., C^L h, C^o h] + biases
        # The units of each degree, a contiguous block [start[d], start[d + 1]).
        self.block = torch.searchsorted(m, torch.arange(D + 1, device=m.device)).tolist()

    def distribution(self, h: Tensor) -> MADEBernoulli:
        return MADEBernoulli(self, self.cond(h))


class MADEBernoulli(AutoregressiveBernoulli):
    """The MADE emission's p(x_t | h_t), from ``cond`` = C h (..., L H + D) (see MADEEmission)."""

    emission: MADEEmission

    def __init__(self, emission: MADEEmission, cond: Tensor,
                 validate_args: bool | None = None) -> None:
        self.cond = cond
        super().__init__(emission, cond.shape[:-1], validate_args)

    def _zeros(self, shape: torch.Size) -> Tensor:
        return self.cond.new_zeros(shape)

    def _position_logits(self, x: Tensor) -> Tensor:
        em, c = self.emission, self.cond
        H = em.hidden
        pre = em.inp(x)  # [(W^1 * M^1) x, (A * M^A) x]
        a = torch.relu(pre[..., :H] + c[..., :H])  # a^1
        for i, layer in enumerate(em.hiddens, start=1):
            a = torch.relu(layer(a) + c[..., i * H:(i + 1) * H])  # a^l
        return em.out(a) + pre[..., H:] + c[..., em.layers * H:]  # l

    def _start(self, shape: torch.Size) -> _MADEState:
        em = self.emission
        w_in = em.inp.masked_weight()
        state = _MADEState(
            weights=[w_in[:em.hidden]] + [m.masked_weight() for m in em.hiddens],
            direct=w_in[em.hidden:], out=em.out.masked_weight(),
            cond=self.cond.expand(shape + self.cond.shape[-1:]),
            acts=[self.cond.new_zeros(shape + (em.hidden,)) for _ in range(em.layers)])
        self._units(state, 0, self._zeros(shape + (em.x_dim,)))  # degree 0 (D = 1 only)
        return state

    def _units(self, s: _MADEState, degree: int, x: Tensor) -> None:
        """Compute, layer by layer, the units of ``degree``: all their inputs are known."""
        em = self.emission
        lo, hi = em.block[degree], em.block[degree + 1]
        if lo == hi:
            return
        H, below = em.hidden, x
        for layer, (w, a) in enumerate(zip(s.weights, s.acts, strict=True)):
            a[..., lo:hi] = torch.relu(F.linear(below, w[lo:hi])
                                       + s.cond[..., layer * H + lo:layer * H + hi])
            below = a

    def _logit(self, s: _MADEState, k: int, x: Tensor) -> Tensor:
        em = self.emission
        return s.acts[-1] @ s.out[k] + x @ s.direct[k] + s.cond[..., em.layers * em.hidden + k]

    def _advance(self, s: _MADEState, k: int, x: Tensor) -> _MADEState:
        self._units(s, k + 1, x)  # x at positions <= k is known: the units of degree k + 1
        return s


class _MADEState(NamedTuple):
    """The MADE sampler's state: masked weights, the conditioning, the hidden units so far."""

    weights: list[Tensor]  # W^1 * M^1 (H, D), then W^l * M^l (H, H)
    direct: Tensor  # A * M^A (D, D)
    out: Tensor  # W^o * M^o (D, H)
    cond: Tensor  # C h, expanded to the sampled rows
    acts: list[Tensor]  # a^1, ..., a^L; the units of degree <= k filled in after position k


class NADEEmission(_Ordered):
    """p(x_t | h_t) by NADE (Larochelle & Murray 2011) with its biases from h_t, as in the
    RNN-NADE (Boulanger-Lewandowski et al. 2012), over x_t in the order o:

        a_1 = c(h),   a_{k+1} = a_k + W[:, k] x_k,   s_k = sigmoid(a_k)
        p(x_k = 1 | x_<k, h) = sigmoid(b_k(h) + V_k . s_k)

    over positions k = 1..D (x in the order o), with [b(h), c(h)] = one linear map of h (a
    :class:`StepLinear`), W (H, D) and V (D, H) shared, H = ``hidden`` (NADE_HIDDEN).
    Teacher-forced, a_k = c + sum_{j<k} W[:, j] x_j for all k at once is a cumulative sum over
    positions (:func:`nade_sums`); sampling runs the recursion; O(D H) per row either way.
    """

    name = "nade"

    def __init__(self, in_dim: int, x_dim: int, hidden: int = NADE_HIDDEN,
                 order: Order = "ascending") -> None:
        super().__init__(x_dim, order)
        if hidden < 1:
            raise ValueError(f"NADE needs at least one hidden unit, not {hidden}")
        self.hidden = hidden
        self.cond = StepLinear(in_dim, x_dim + hidden)  # [b(h), c(h)]
        std = math.sqrt(2.0 / (hidden + x_dim))  # Glorot-normal, as the paper init's layers
        self.W = nn.Parameter(torch.randn(hidden, x_dim) * std)
        self.V = nn.Parameter(torch.randn(x_dim, hidden) * std)

    def distribution(self, h: Tensor) -> NADEBernoulli:
        b, c = self.cond(h).split([self.x_dim, self.hidden], dim=-1)
        return NADEBernoulli(self, b, c)


class NADEBernoulli(AutoregressiveBernoulli):
    """The NADE emission's p(x_t | h_t), from its biases b (..., D) and c (..., H)."""

    emission: NADEEmission

    def __init__(self, emission: NADEEmission, b: Tensor, c: Tensor,
                 validate_args: bool | None = None) -> None:
        self.b, self.c = b, c
        super().__init__(emission, b.shape[:-1], validate_args)

    def _zeros(self, shape: torch.Size) -> Tensor:
        return self.b.new_zeros(shape)

    def _position_logits(self, x: Tensor) -> Tensor:
        em = self.emission
        return self.b + nade_sums(x, self.c, em.W, em.V)  # b_k + V_k . sigmoid(a_k)

    def _start(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """(b, a_1 = c), expanded to the sampled rows."""
        return self.b.expand(shape + self.b.shape[-1:]), self.c.expand(shape + self.c.shape[-1:])

    def _logit(self, s: tuple[Tensor, Tensor], k: int, x: Tensor) -> Tensor:
        b, a = s
        return b[..., k] + torch.sigmoid(a) @ self.emission.V[k]  # b_k + V_k . sigmoid(a_k)

    def _advance(self, s: tuple[Tensor, Tensor], k: int, x: Tensor) -> tuple[Tensor, Tensor]:
        b, a = s
        return b, a + x[..., k, None] * self.emission.W[:, k]  # a_{k+1} = a_k + W[:, k] x_k


NADE_LOOP_ELEMENTS = 1 << 19  # (rows, D, H) elements above which nade_sums runs position by
# position (:class:`_NADERecursion`); below, the one-pass cumulative sum is faster (measured
# crossover near 50 rows of D = 88, H = 100 on one thread)


def nade_sums(x: Tensor, c: Tensor, W: Tensor, V: Tensor) -> Tensor:
    """V_k . sigmoid(a_k) for every position k, a_1 = c, a_{k+1} = a_k + W[:, k] x_k: x (..., D)
    in positions, c (..., H), W (H, D), V (D, H) -> (..., D), teacher-forced for all rows.

    a_k = c + sum_{j<k} W[:, j] x_j is a cumulative sum over positions. For few rows it is taken
    in one pass over (rows, D, H) tensors; for many (more than NADE_LOOP_ELEMENTS elements) the
    same sums run position by position (:class:`_NADERecursion`), in cache."""
    D, H = W.shape[1], W.shape[0]
    shape = torch.broadcast_shapes(x.shape[:-1], c.shape[:-1])
    if math.prod(shape) * D * H <= NADE_LOOP_ELEMENTS:
        # the terms shifted by one, W[:, k-1] x_{k-1} at position k (zero at position 1)
        x_prev, w_prev = F.pad(x[..., :-1], (1, 0)), F.pad(W[:, :-1], (1, 0))
        a = c.unsqueeze(-2) + (x_prev.unsqueeze(-1) * w_prev.t()).cumsum(-2)  # (..., D, H)
        return (torch.sigmoid(a) * V).sum(-1)
    rows_x = x.expand(*shape, D).reshape(-1, D)
    rows_c = c.expand(*shape, H).reshape(-1, H)
    return _NADERecursion.apply(rows_x, rows_c, W, V).reshape(*shape, D)


class _NADERecursion(torch.autograd.Function):
    """:func:`nade_sums` for x (N, D), c (N, H) position by position, forward and backward.

    The one-pass cumulative sum allocates and sweeps several fresh (N, D, H) tensors; for the
    1,600 rows of a batch of 16 x 100 steps (D = 88, H = 100, one thread) its forward and
    backward took 710 ms against 112 ms here, where each position touches (N, H) blocks that stay
    in cache. Forward: a += x_k W[:, k] (one rank-1 update), s_k = sigmoid(a_k) kept for the
    backward, out_k = s_k V_k. Backward, from the last position down, with R = dL/da_k
    accumulated as sum_{j >= k} g_j V_j s_j (1 - s_j): dW[:, k] = R_{k+1}^T x_k,
    dx_k = R_{k+1} W[:, k], dV_k = s_k^T g_k, dc = R_1.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, c: Tensor, W: Tensor, V: Tensor) -> Tensor:
        N, D = x.shape
        keep = any(ctx.needs_input_grad)
        s = x.new_empty(D if keep else 1, N, c.shape[1])
        out = x.new_empty(D, N)
        xt = x.t().contiguous()
        a = c.clone()
        for k in range(D):
            s_k = s[k if keep else 0]
            torch.sigmoid(a, out=s_k)
            torch.mv(s_k, V[k], out=out[k])
            if k < D - 1:
                a.addr_(xt[k], W[:, k])  # a_{k+1} = a_k + x_k W[:, k]
        if keep:
            ctx.save_for_backward(xt, W, V, s)
        return out.t()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
        xt, W, V, s = ctx.saved_tensors
        D, N, H = s.shape
        gt = g.t().contiguous()
        R = s.new_zeros(N, H)  # dL/da_{k+1}, then dL/da_k
        dWt, dV = W.new_zeros(D, H), torch.empty_like(V)
        dxt = xt.new_zeros(D, N) if ctx.needs_input_grad[0] else None
        for k in range(D - 1, -1, -1):
            if k < D - 1:  # a_{k+1} = a_k + x_k W[:, k]: R is dL/da_{k+1} here
                torch.mv(R.t(), xt[k], out=dWt[k])
                if dxt is not None:
                    torch.mv(R, W[:, k], out=dxt[k])
            torch.mv(s[k].t(), gt[k], out=dV[k])
            R.add_(torch.ops.aten.sigmoid_backward(torch.outer(gt[k], V[k]), s[k]))
        return None if dxt is None else dxt.t(), R, dWt.t(), dV

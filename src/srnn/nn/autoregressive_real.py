"""Autoregressive emissions for real-valued x_t (speech frames): ar-rnn and delta-random.

The gauss and gmm emissions model the D values of a frame x_t jointly from the model's emission
features h_t alone. These two factor p(x_t | h_t) along a fixed order o of the D values
(:func:`srnn.nn.autoregressive.autoregressive_order`) into *units*, consecutive blocks of
positions, each a mixture of diagonal Gaussians given h_t and the units before it:

    p(x_t | h_t) = prod_i GMM(x_{t,U_i}; theta_i(h_t, x_{t,U_<i}))

  * ``ar-rnn``, the speech "hier" factorisation of Lai, Dai, Yang, Yoo (NeurIPS 2019,
    "Re-examination of the role of latent variables in sequence modeling": "we use the RNN as
    the implementation of the low-level auto-regressive factorization function in the speech
    datasets"): the units are n = ceil(D / C) chunks of C = ``chunk`` values, and a small GRU
    runs over them,

        s_0 = tanh(W_0 h + b_0)                      (one linear map of h, all GRU layers)
        g_i = GRU(g_{i-1}, x_{U_{i-1}}),  g_0 = s_0,  x_{U_0} := 0   (i = 1..n)
        theta_i = W_o g_i + b_o                      (one head shared by the chunks)

    so theta_i reads h and the chunks before i only. When C does not divide D the last chunk
    has D - (n - 1) C values: its padded values are left out of its density (a diagonal
    mixture's marginal) and it is never a GRU input.
  * ``delta-random``, the delta-RNN-random of Lai et al. (section 4.4): a fixed random half A
    (the first ceil(D / 2) positions of a seeded random order) comes first, the rest B given A,

        theta_A = W_A h + b_A
        u = relu(W_h h + W_x x_A + b_u),  u <- relu(W_l u + b_l)  (``layers`` - 1 times)
        theta_B = W_B u + b_B

Each unit's theta is [logits (K, only when K > 1), means (K C), raw scales (K C)]:
GMM(x; theta) = sum_k pi_k N(x; mu_k, diag sigma_k^2), pi = softmax(logits), sigma =
softplus(raw) + min_std (1e-3, as the gmm emission), K = ``mixtures``; K = 1 is a diagonal
Gaussian. Each emission module's ``distribution(h)`` is a :class:`torch.distributions.Distribution`
(batch shape h.shape[:-1], event shape (D,)) whose ``log_prob`` is teacher-forced (one GRU call
over the chunks of all rows; one pass for delta-random) and whose ``sample`` runs the units in
order. ``mean`` and ``variance`` are Monte-Carlo estimates (:class:`AutoregressiveGMM`), exact
for the first unit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from srnn.nn.autoregressive import Order, _Ordered
from srnn.nn.layers import bounded_std
from srnn.nn.step_linear import StepLinear

ARRNN_HIDDEN = 128  # default GRU units of ar-rnn
ARRNN_CHUNKS = 10  # default number of chunks of ar-rnn: C = ceil(D / 10), 20 values for speech
DELTA_HIDDEN = 500  # default units of each hidden layer of delta-random's MLP on [h, x_A]
DELTA_ORDER = "random:0"  # delta-random's default split
MIN_STD = 1e-3  # floor of every standard deviation, as the gmm emission's
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def default_chunk(x_dim: int) -> int:
    """ar-rnn's default chunk size: ceil(D / ARRNN_CHUNKS), so at most ARRNN_CHUNKS GRU steps
    per frame (20 values for the 200-sample speech frames)."""
    return max(1, -(-x_dim // ARRNN_CHUNKS))


def _flat(t: Tensor, shape: torch.Size) -> Tensor:
    """t (..., P), broadcast to ``shape`` + (P,), as (prod(shape), P) rows."""
    return t.expand(*shape, t.shape[-1]).reshape(-1, t.shape[-1])


class Mixture:
    """K-component mixture of diagonal Gaussians over C values, from a flat parameter vector
    theta (..., size) = [logits (K, only when K > 1), means (K C), raw scales (K C)]."""

    def __init__(self, components: int, width: int, min_std: float = MIN_STD) -> None:
        if components < 1:
            raise ValueError(f"a mixture needs at least one component, not {components}")
        self.k, self.width, self.min_std = components, width, min_std
        self.logit_size = components if components > 1 else 0
        self.size = self.logit_size + 2 * components * width

    def split(self, theta: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """(logits (..., K) or None for K = 1, means (..., K, C), scales (..., K, C))."""
        K, C = self.k, self.width
        logits = theta[..., :K] if self.logit_size else None
        loc, raw = theta[..., self.logit_size:].split(K * C, dim=-1)
        return (logits, loc.unflatten(-1, (K, C)),
                bounded_std(raw, self.min_std).unflatten(-1, (K, C)))

    def log_prob(self, theta: Tensor, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """log GMM(x; theta) for x (..., C), broadcast against theta; ``valid`` (..., C), 0/1,
        leaves values out (their marginal)."""
        logits, loc, scale = self.split(theta)
        z = (x.unsqueeze(-2) - loc) / scale
        comp = -0.5 * z * z - scale.log() - LOG_SQRT_2PI  # (..., K, C)
        if valid is not None:
            comp = comp * valid.unsqueeze(-2)
        comp = comp.sum(-1)
        if logits is None:
            return comp[..., 0]
        return torch.logsumexp(F.log_softmax(logits, dim=-1) + comp, dim=-1)

    def moments(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """The mixture's mean and variance per value, (..., C) each: sum_k pi_k mu_k and
        sum_k pi_k (sigma_k^2 + (mu_k - mean)^2)."""
        logits, loc, scale = self.split(theta)
        if logits is None:
            return loc[..., 0, :], scale[..., 0, :].square()
        w = torch.softmax(logits, dim=-1).unsqueeze(-1)
        mean = (w * loc).sum(-2)
        return mean, (w * (scale.square() + (loc - mean.unsqueeze(-2)).square())).sum(-2)

    def sample(self, theta: Tensor) -> Tensor:
        """x ~ GMM(theta), theta (N, size) -> (N, C), from the global random generator."""
        logits, loc, scale = self.split(theta)
        if logits is None:
            loc, scale = loc[:, 0], scale[:, 0]
        else:
            k = torch.multinomial(torch.softmax(logits, dim=-1), 1)  # (N, 1)
            pick = k.unsqueeze(-1).expand(-1, 1, self.width)
            loc, scale = loc.gather(1, pick)[:, 0], scale.gather(1, pick)[:, 0]
        return loc + scale * torch.randn_like(loc)


class _RealOrdered(_Ordered):
    """What ar-rnn and delta-random share: D, the order (see :class:`_Ordered`), the units
    (half-open position ranges [lo, hi)) and a mixture per unit; real-valued data."""

    binary = False
    units: list[tuple[int, int]]

    def unit_mixture(self, i: int) -> Mixture:
        raise NotImplementedError

    def unit_dimensions(self, i: int) -> Tensor:
        """The dimensions of x_t in unit i (long, on the CPU)."""
        lo, hi = self.units[i]
        return self.order[lo:hi].cpu()

    def distribution(self, h: Tensor) -> AutoregressiveGMM:  # type: ignore[override]
        raise NotImplementedError


class AutoregressiveGMM(Distribution):
    """p(x) = prod_i GMM(x_{U_i}; theta_i(x_{U_<i})) over real x (..., D), the conditioning on
    h already in the subclass. Subclasses give the teacher-forced parameters and log-density
    (:meth:`unit_parameters`, :meth:`log_prob`) and the sampler's recursion (:meth:`_start`,
    :meth:`_theta`, :meth:`_advance`, over N flat rows), all in positions.

    ``mean`` and ``variance`` are Monte-Carlo estimates from S = ``MEAN_SAMPLES`` (32) ancestral
    samples, drawn from the global random generator under ``torch.no_grad()``, with the
    conditional mean m_s and variance v_s of each value given the units before it along sample
    s (Rao-Blackwellised): mean = (1/S) sum_s m_s, variance = (1/S) sum_s v_s + the sample
    variance (S - 1 in the denominator) of the m_s, the law of total variance. Both are exact
    for the first unit (its m_s and v_s do not depend on the draws). Computed once per
    distribution.
    """

    MEAN_SAMPLES = 32
    MEAN_ROWS = 1 << 16  # rows sampled at once for the mean (bounds its memory)
    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, emission: _RealOrdered, batch_shape: torch.Size,
                 validate_args: bool | None = None) -> None:
        self.emission = emission
        self._moments: tuple[Tensor, Tensor] | None = None
        super().__init__(batch_shape, torch.Size([emission.x_dim]), validate_args)

    # -- what a subclass gives, in positions -----------------------------------------------
    def unit_parameters(self, value: Tensor) -> list[Tensor]:
        """theta_i of every unit i, teacher-forced from x (..., D) in dimension order
        (broadcast against the batch shape): (..., size_i) each."""
        raise NotImplementedError

    def _start(self, shape: torch.Size) -> Any:
        """The sampler's state before unit 1, for N = prod(shape) flat rows."""
        raise NotImplementedError

    def _theta(self, state: Any, i: int) -> Tensor:
        """theta_i (N, size_i) from the state after the units before i."""
        raise NotImplementedError

    def _advance(self, state: Any, i: int, v: Tensor) -> Any:
        """The state once unit i's values v (N, C_i) are drawn."""
        raise NotImplementedError

    # -- the distribution --------------------------------------------------------------------
    def _rows(self, value: Tensor) -> tuple[torch.Size, Tensor]:
        """The broadcast sample + batch shape of ``value`` and x in positions, (..., D)."""
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return shape, self.emission.to_positions(value).expand(*shape, self.emission.x_dim)

    def _ancestral(self, sample_shape: torch.Size) -> tuple[Tensor, Tensor, Tensor]:
        """x ~ p (sample_shape + batch + (D,)) and each value's conditional mean and variance
        given the units before it along x, in dimension order; global generator, no grad."""
        em = self.emission
        shape = torch.Size(sample_shape) + self.batch_shape
        xs, means, variances = [], [], []
        with torch.no_grad():
            state = self._start(shape)
            for i, (lo, hi) in enumerate(em.units):  # units in order: theta_i reads U_<i
                mixture, theta = em.unit_mixture(i), self._theta(state, i)
                v = mixture.sample(theta)
                m, var = mixture.moments(theta)
                xs.append(v[:, :hi - lo])
                means.append(m[:, :hi - lo])
                variances.append(var[:, :hi - lo])
                if i < len(em.units) - 1:
                    state = self._advance(state, i, v)
        out = [em.to_dimensions(torch.cat(t, dim=-1).view(*shape, em.x_dim))
               for t in (xs, means, variances)]
        return out[0], out[1], out[2]

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        return self._ancestral(torch.Size(sample_shape))[0]

    def _estimate(self) -> tuple[Tensor, Tensor]:
        if self._moments is None:
            n, rows = self.MEAN_SAMPLES, max(1, math.prod(self.batch_shape))
            chunk = max(1, min(n, self.MEAN_ROWS // rows))
            shift, sums = None, None
            for start in range(0, n, chunk):
                _, m, v = self._ancestral(torch.Size([min(chunk, n - start)]))
                if shift is None:  # the m_s summed shifted by the first: no cancellation
                    shift = m[0]
                d = m - shift
                part = torch.stack([d.sum(0), d.square().sum(0), v.sum(0)])
                sums = part if sums is None else sums + part
            assert shift is not None and sums is not None
            sum_d, sum_d2, sum_v = sums.unbind(0)
            spread = (((sum_d2 - sum_d.square() / n) / (n - 1)).clamp(min=0) if n > 1
                      else torch.zeros_like(sum_d))  # the sample variance of the m_s
            self._moments = shift + sum_d / n, sum_v / n + spread
        return self._moments

    @property
    def mean(self) -> Tensor:
        """Monte-Carlo estimate of E[x] (see the class docstring), batch + (D,)."""
        return self._estimate()[0]

    @property
    def variance(self) -> Tensor:
        """Monte-Carlo estimate of Var[x_d] by the law of total variance (class docstring)."""
        return self._estimate()[1]


# -- ar-rnn ---------------------------------------------------------------------------------

class ARRNNEmission(_RealOrdered):
    """p(x_t | h_t) = prod_i GMM(x_{U_i}; theta_i), U_i the i-th chunk of C = ``chunk`` values
    in the order o, theta_i from a GRU over the chunks (Lai et al. 2019's speech "hier"):

        s_0 = tanh(W_0 h + b_0),  g_i = GRU(g_{i-1}, x_{U_{i-1}}),  g_0 = s_0,  x_{U_0} = 0
        theta_i = W_o g_i + b_o

    ``hidden`` GRU units (ARRNN_HIDDEN) in ``layers`` layers (s_0 holds all their initial
    states), ``mixtures`` components per chunk (1: a diagonal Gaussian), C = ``chunk``
    (default :func:`default_chunk`). W_0 and W_o are :class:`StepLinear`; teacher-forced, one
    ``nn.GRU`` call over the (rows, n, C) chunks; sampling steps the same GRU chunk by chunk.
    """

    name = "ar-rnn"

    def __init__(self, in_dim: int, x_dim: int, mixtures: int = 5, hidden: int = ARRNN_HIDDEN,
                 layers: int = 1, chunk: int | None = None, order: Order = "ascending",
                 min_std: float = MIN_STD) -> None:
        super().__init__(x_dim, order)
        C = default_chunk(x_dim) if chunk is None else chunk
        if not 1 <= C <= x_dim:
            raise ValueError(f"ar-rnn's chunk must hold 1 to {x_dim} values, not {C}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"ar-rnn needs at least one GRU layer of one unit, not {layers} "
                             f"of {hidden}")
        self.chunk, self.hidden, self.layers = C, hidden, layers
        self.chunks = -(-x_dim // C)
        self.last = x_dim - (self.chunks - 1) * C  # values in the last chunk
        self.units = [(i * C, min((i + 1) * C, x_dim)) for i in range(self.chunks)]
        self.mixture = Mixture(mixtures, C, min_std)
        self.init = StepLinear(in_dim, layers * hidden)  # s_0 = tanh(W_0 h + b_0)
        self.gru = nn.GRU(C, hidden, layers, batch_first=True)
        self.head = StepLinear(hidden, self.mixture.size)  # theta_i = W_o g_i + b_o

    def unit_mixture(self, i: int) -> Mixture:
        return self.mixture

    def distribution(self, h: Tensor) -> ARRNNGMM:
        return ARRNNGMM(self, torch.tanh(self.init(h)))


class ARRNNGMM(AutoregressiveGMM):
    """The ar-rnn emission's p(x_t | h_t), from the GRU's initial states s_0 (..., L H)."""

    emission: ARRNNEmission

    def __init__(self, emission: ARRNNEmission, s0: Tensor,
                 validate_args: bool | None = None) -> None:
        self.s0 = s0
        super().__init__(emission, s0.shape[:-1], validate_args)

    def _initial(self, shape: torch.Size) -> Tensor:
        """s_0 for N = prod(shape) rows as the GRU's (L, N, H)."""
        em = self.emission
        s = _flat(self.s0, shape).view(-1, em.layers, em.hidden)
        return s.transpose(0, 1).contiguous()

    def _teacher_forced(self, value: Tensor) -> tuple[torch.Size, Tensor, Tensor]:
        """The shape, the chunks x (N, n, C) (zero-padded) and theta (N, n, size)."""
        em = self.emission
        shape, x = self._rows(value)
        C, n = em.chunk, em.chunks
        xs = F.pad(x, (0, n * C - em.x_dim)).reshape(-1, n, C)
        inp = torch.cat([xs.new_zeros(xs.shape[0], 1, C), xs[:, :-1]], dim=1)  # x_{U_{i-1}}
        g, _ = em.gru(inp, self._initial(shape))  # g_1..g_n in one call
        return shape, xs, em.head(g)

    def unit_parameters(self, value: Tensor) -> list[Tensor]:
        shape, _, theta = self._teacher_forced(value)
        return list(theta.view(*shape, *theta.shape[1:]).unbind(-2))

    def log_prob(self, value: Tensor) -> Tensor:
        em = self.emission
        shape, xs, theta = self._teacher_forced(value)
        valid = None
        if em.last < em.chunk:  # the last chunk's padding is left out
            valid = xs.new_ones(em.chunks, em.chunk)
            valid[-1, em.last:] = 0
        return em.mixture.log_prob(theta, xs, valid).sum(-1).view(shape)

    def _start(self, shape: torch.Size) -> tuple[Tensor, Tensor]:
        """(g_1, the GRU state after reading x_{U_0} = 0)."""
        s = self._initial(shape)
        g, s = self.emission.gru(s.new_zeros(s.shape[1], 1, self.emission.chunk), s)
        return g[:, 0], s

    def _theta(self, state: tuple[Tensor, Tensor], i: int) -> Tensor:
        return self.emission.head(state[0])

    def _advance(self, state: tuple[Tensor, Tensor], i: int, v: Tensor
                 ) -> tuple[Tensor, Tensor]:
        g, s = self.emission.gru(v.unsqueeze(1), state[1])  # g_{i+1} = GRU(g_i, x_{U_i})
        return g[:, 0], s


# -- delta-random -------------------------------------------------------------------------

class DeltaRandomEmission(_RealOrdered):
    """p(x_t | h_t) = GMM(x_A; theta_A(h)) GMM(x_B; theta_B(h, x_A)) (delta-RNN-random, Lai et
    al. 2019, section 4.4), A the first ceil(D / 2) positions of the order o (a seeded random
    permutation: ``random:SEED`` or an explicit one), B the rest:

        theta_A = W_A h + b_A
        u^1 = relu(W_h h + W_x x_A + b_u),  u^l = relu(W_l u^{l-1} + b_l)  (l = 2..L)
        theta_B = W_B u^L + b_B

    ``hidden`` units (DELTA_HIDDEN) in L = ``layers`` layers, ``mixtures`` components per part
    (1: diagonal Gaussians). Every linear map is a :class:`StepLinear`. D = 1 has no part B.
    """

    name = "delta-random"

    def __init__(self, in_dim: int, x_dim: int, mixtures: int = 5, hidden: int = DELTA_HIDDEN,
                 layers: int = 1, order: Order = DELTA_ORDER, min_std: float = MIN_STD) -> None:
        if isinstance(order, str) and not order.startswith("random:"):
            raise ValueError(f"delta-random splits x_t by a random order: random:SEED or a "
                             f"permutation of 0..{x_dim - 1}, not {order!r}")
        super().__init__(x_dim, order)
        if layers < 1 or hidden < 1:
            raise ValueError(f"delta-random needs at least one hidden layer of one unit, not "
                             f"{layers} of {hidden}")
        self.hidden, self.layers = hidden, layers
        self.split_at = (x_dim + 1) // 2  # |A|
        rest = x_dim - self.split_at
        self.units = [(0, self.split_at)] + ([(self.split_at, x_dim)] if rest else [])
        self.mixtures = [Mixture(mixtures, self.split_at, min_std)]
        self.first = StepLinear(in_dim, self.mixtures[0].size)  # theta_A
        if rest:
            self.mixtures.append(Mixture(mixtures, rest, min_std))
            self.cond_h = StepLinear(in_dim, hidden)  # W_h h + b_u
            self.cond_x = StepLinear(self.split_at, hidden, bias=False)  # W_x x_A
            self.hiddens = nn.ModuleList(StepLinear(hidden, hidden) for _ in range(layers - 1))
            self.second = StepLinear(hidden, self.mixtures[1].size)  # theta_B

    def unit_mixture(self, i: int) -> Mixture:
        return self.mixtures[i]

    def second_parameters(self, c: Tensor, x_a: Tensor) -> Tensor:
        """theta_B from c = W_h h + b_u and x_A (broadcast)."""
        u = torch.relu(c + self.cond_x(x_a))  # u^1
        for layer in self.hiddens:
            u = torch.relu(layer(u))  # u^l
        return self.second(u)

    def distribution(self, h: Tensor) -> DeltaRandomGMM:
        return DeltaRandomGMM(self, self.first(h),
                              self.cond_h(h) if len(self.units) > 1 else None)


class _DeltaState(NamedTuple):
    """The delta-random sampler's state: theta_A, W_h h + b_u and, once x_A is drawn, theta_B."""

    theta_a: Tensor
    c: Tensor | None
    theta_b: Tensor | None


class DeltaRandomGMM(AutoregressiveGMM):
    """The delta-random emission's p(x_t | h_t), from theta_A (..., size_A) and c = W_h h + b_u
    (..., H) (None when D = 1)."""

    emission: DeltaRandomEmission

    def __init__(self, emission: DeltaRandomEmission, theta_a: Tensor, c: Tensor | None,
                 validate_args: bool | None = None) -> None:
        self.theta_a, self.c = theta_a, c
        super().__init__(emission, theta_a.shape[:-1], validate_args)

    def unit_parameters(self, value: Tensor) -> list[Tensor]:
        em = self.emission
        shape, x = self._rows(value)
        out = [self.theta_a.expand(*shape, self.theta_a.shape[-1])]
        if self.c is not None:
            out.append(em.second_parameters(self.c, x[..., :em.split_at]))
        return out

    def log_prob(self, value: Tensor) -> Tensor:
        em = self.emission
        _, x = self._rows(value)
        x_a = x[..., :em.split_at]
        lp = em.mixtures[0].log_prob(self.theta_a, x_a)  # log GMM(x_A; theta_A)
        if self.c is not None:  # + log GMM(x_B; theta_B(h, x_A))
            lp = lp + em.mixtures[1].log_prob(em.second_parameters(self.c, x_a),
                                              x[..., em.split_at:])
        return lp

    def _start(self, shape: torch.Size) -> _DeltaState:
        return _DeltaState(_flat(self.theta_a, shape),
                           None if self.c is None else _flat(self.c, shape), None)

    def _theta(self, state: _DeltaState, i: int) -> Tensor:
        theta = state.theta_a if i == 0 else state.theta_b
        assert theta is not None
        return theta

    def _advance(self, state: _DeltaState, i: int, v: Tensor) -> _DeltaState:
        assert state.c is not None
        return state._replace(theta_b=self.emission.second_parameters(state.c, v))

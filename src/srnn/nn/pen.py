"""Emissions for steps that mix binary and real values: the pen emission of online handwriting
and the mixed-columns emission of users' own arrays.

**pen** (Graves 2013, *Generating sequences with recurrent neural networks*, section 4.1, the
mixture density output of his handwriting model). A step is x_t = (s_t, dx_t, dy_t): s_t = 1
when the pen is lifted after this point (the end of a stroke), else 0, and the offset (dx, dy)
from the previous point (normalised). The emission reads the features h_t through one linear
map, theta = W h_t + b = (e^, pi^_1..K, mu^_1..K (2 each), sigma^_1..K (2 each), rho^_1..K),
1 + 6 K values for K = ``mixtures`` components, and

    e       = sigmoid(e^)                                   (P1, the pen-lift probability)
    pi_j    = exp(pi^_j) / sum_k exp(pi^_k)                 (P2, mixture weights by softmax)
    mu_j    = mu^_j                                         (P3, means)
    sigma_j = exp(sigma^_j) + 1e-3                          (P4, standard deviations by exp)
    rho_j   = (1 - 1e-3) tanh(rho^_j)                       (P5, correlations by tanh)

    p(x_t | h_t) = Bernoulli(s_t; e) sum_j pi_j N2((dx_t, dy_t); mu_j, sigma_j, rho_j)      (P6)

    N2(x; mu, sigma, rho) = exp(-Z / (2 (1 - rho^2))) / (2 pi sigma_1 sigma_2 sqrt(1 - rho^2))
    Z = z_1^2 + z_2^2 - 2 rho z_1 z_2,   z_i = (x_i - mu_i) / sigma_i                    (P7)

i.e. the bivariate normal with covariance [[s1^2, rho s1 s2], [rho s1 s2, s2^2]]. Graves's
parameterisation, with two guards: the floor 1e-3 on sigma (as the gmm emission's) and |rho| <=
0.999, so that 1 - rho^2 >= 0.002 and no component collapses onto a line. (Graves's e_t is the
same sigmoid up to the sign of its logit.) Sampling draws s ~ Bernoulli(e), a component j ~ pi,
then dx = mu_1 + sigma_1 n_1, dy = mu_2 + sigma_2 (rho n_1 + sqrt(1 - rho^2) n_2).

**mixed** (any D values, some binary): the columns B = ``binary_columns`` are Bernoulli, the
others R diagonal Gaussian, all independent given h_t,

    p(x_t | h_t) = prod_{d in B} Bernoulli(x_td; sigmoid(l_d))
                   prod_{d in R} N(x_td; mu_d, sigma_d^2)                                 (M1)

with l = W_B h + b_B and (mu, sigma) = :class:`~srnn.nn.layers.GaussianHead` (sigma =
softplus + 1e-3). No binary column is a diagonal Gaussian, all of them a Bernoulli.

Both densities are :class:`torch.distributions.Distribution` objects (batch shape
h.shape[:-1], event shape (D,)) with ``log_prob``, ``sample``, and exact ``mean`` and
``variance``. The Bernoulli terms are -BCE(logit, x), finite for any x, so that padded steps
holding garbage never give NaN (the bounds mask them out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from srnn.columns import check_columns
from srnn.nn.layers import GaussianHead
from srnn.nn.step_linear import StepLinear

PEN_DIM = 3  # (pen lift, dx, dy)
PEN_COLUMN = 0  # the binary column of a pen step
MIN_STD = 1e-3  # floor of every standard deviation (P4), as the gmm emission's
MAX_LOG_STD = 10.0  # sigma^ is capped here before the exp (sigma <= e^10): no overflow
MAX_RHO = 1 - 1e-3  # |rho| <= 0.999 (P5)
LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log Bernoulli(x; sigmoid(logits)) = x log sigmoid(l) + (1 - x) log sigmoid(-l),
    elementwise, finite for every finite x (not only 0 and 1)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")


def bivariate_log_prob(x: Tensor, loc: Tensor, scale: Tensor, rho: Tensor) -> Tensor:
    """log N2(x; mu, sigma, rho) of (P7), x (..., 2) against loc, scale (..., K, 2) and
    rho (..., K) (x broadcast over the K components): (..., K)."""
    z = (x.unsqueeze(-2) - loc) / scale
    one_minus = 1 - rho * rho
    q = z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * rho * z[..., 0] * z[..., 1]
    return (-LOG_2PI - scale.log().sum(-1) - 0.5 * one_minus.log()
            - q / (2 * one_minus))


class PenMixture(Distribution):
    """p(x_t | h_t) of (P6): a Bernoulli pen lift times a K-component bivariate Gaussian
    mixture of the offset, for steps (pen, dx, dy) with the pen bit in column
    :data:`PEN_COLUMN`."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, pen_logit: Tensor, mix_logits: Tensor, loc: Tensor, scale: Tensor,
                 rho: Tensor) -> None:
        """``pen_logit`` (...,), ``mix_logits`` (..., K), ``loc`` and ``scale`` (..., K, 2),
        ``rho`` (..., K): e^ of (P1), pi^ of (P2), and mu, sigma, rho of (P3)-(P5)."""
        self.pen_logit, self.mix_logits = pen_logit, mix_logits
        self.loc, self.scale, self.rho = loc, scale, rho
        super().__init__(pen_logit.shape, torch.Size([PEN_DIM]), validate_args=False)

    @property
    def pen_probability(self) -> Tensor:
        """e of (P1), (...,)."""
        return torch.sigmoid(self.pen_logit)

    @property
    def weights(self) -> Tensor:
        """pi of (P2), (..., K)."""
        return torch.softmax(self.mix_logits, dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        """log p(x_t | h_t) of (P6) for x (..., 3): (...,)."""
        pen = bernoulli_log_prob(self.pen_logit, value[..., PEN_COLUMN])
        offset = value[..., PEN_COLUMN + 1:PEN_COLUMN + 3]
        comp = bivariate_log_prob(offset, self.loc, self.scale, self.rho)
        return pen + torch.logsumexp(F.log_softmax(self.mix_logits, dim=-1) + comp, dim=-1)

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        """(sample_shape + batch_shape + (3,)) draws, from the global random generator."""
        shape = torch.Size(sample_shape) + self.batch_shape
        K = self.mix_logits.shape[-1]
        pen = torch.bernoulli(self.pen_probability.expand(shape))
        w = self.weights.expand(*shape, K).reshape(-1, K)
        j = torch.multinomial(w, 1).view(*shape, 1)  # the component of each draw
        loc = self.loc.expand(*shape, K, 2).gather(-2, j[..., None].expand(*shape, 1, 2))[..., 0, :]
        scale = self.scale.expand(*shape, K, 2).gather(
            -2, j[..., None].expand(*shape, 1, 2))[..., 0, :]
        rho = self.rho.expand(*shape, K).gather(-1, j)[..., 0]
        n = torch.randn(*shape, 2, dtype=loc.dtype, device=loc.device)
        dx = loc[..., 0] + scale[..., 0] * n[..., 0]
        dy = loc[..., 1] + scale[..., 1] * (rho * n[..., 0] + (1 - rho * rho).sqrt() * n[..., 1])
        return torch.stack([pen, dx, dy], dim=-1)

    @property
    def mean(self) -> Tensor:
        """(e, sum_j pi_j mu_j): (..., 3)."""
        w = self.weights.unsqueeze(-1)
        offset = (w * self.loc).sum(-2)
        return torch.cat([self.pen_probability.unsqueeze(-1), offset], dim=-1)

    @property
    def variance(self) -> Tensor:
        """(e (1 - e), the mixture's variance of dx and of dy): (..., 3)."""
        w = self.weights.unsqueeze(-1)
        offset = (w * self.loc).sum(-2, keepdim=True)
        var = (w * (self.scale.square() + (self.loc - offset).square())).sum(-2)
        e = self.pen_probability.unsqueeze(-1)
        return torch.cat([e * (1 - e), var], dim=-1)


class PenEmission(nn.Module):
    """The pen emission (P1)-(P7): Bernoulli pen lift x bivariate Gaussian mixture of the
    offset, for steps (pen, dx, dy) (Graves 2013, section 4.1)."""

    binary = False  # real-valued (mixed) steps: refused by nothing, fits binary data badly

    def __init__(self, in_dim: int, x_dim: int = PEN_DIM, mixtures: int = 20,
                 min_std: float = MIN_STD) -> None:
        super().__init__()
        if x_dim != PEN_DIM:
            raise ValueError(f"the pen emission models steps of {PEN_DIM} values (pen lift, dx, "
                             f"dy), not {x_dim}: use it on pen trajectories (iamondb:PATH), or "
                             "--emission mixed for other mixed columns")
        if mixtures < 1:
            raise ValueError(f"a mixture needs at least one component, not {mixtures}")
        self.k, self.x_dim, self.min_std = mixtures, x_dim, min_std
        self.theta = StepLinear(in_dim, 1 + 6 * mixtures)  # (e^, pi^, mu^, sigma^, rho^)

    def distribution(self, h: Tensor) -> PenMixture:
        K = self.k
        theta = self.theta(h)
        pen, mix, loc, raw, rho = theta.split([1, K, 2 * K, 2 * K, K], dim=-1)
        scale = torch.exp(raw.clamp(max=MAX_LOG_STD)) + self.min_std  # (P4)
        return PenMixture(pen[..., 0], mix, loc.unflatten(-1, (K, 2)),
                          scale.unflatten(-1, (K, 2)), MAX_RHO * torch.tanh(rho))  # (P5)

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        return self.distribution(h).log_prob(x)


class MixedColumns(Distribution):
    """p(x_t | h_t) of (M1): Bernoulli columns ``binary`` and diagonal Gaussian columns
    ``real`` (index tensors that together cover 0..D-1)."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, logits: Tensor, loc: Tensor, scale: Tensor, binary: Tensor,
                 real: Tensor) -> None:
        """``logits`` (..., |B|), ``loc`` and ``scale`` (..., |R|)."""
        self.logits, self.loc, self.scale = logits, loc, scale
        self.binary, self.real = binary, real
        super().__init__(logits.shape[:-1], torch.Size([len(binary) + len(real)]),
                         validate_args=False)

    def _join(self, b: Tensor, r: Tensor) -> Tensor:
        """Columns of B and of R (..., |B|) and (..., |R|) as one step (..., D)."""
        out = b.new_empty(*torch.broadcast_shapes(b.shape[:-1], r.shape[:-1]), self.event_shape[0])
        out[..., self.binary] = b.expand(*out.shape[:-1], b.shape[-1])
        out[..., self.real] = r.expand(*out.shape[:-1], r.shape[-1])
        return out

    def log_prob(self, value: Tensor) -> Tensor:
        """log p(x_t | h_t) of (M1) for x (..., D): (...,)."""
        b = bernoulli_log_prob(self.logits, value[..., self.binary]).sum(-1)
        z = (value[..., self.real] - self.loc) / self.scale
        r = (-0.5 * z * z - self.scale.log() - 0.5 * LOG_2PI).sum(-1)
        return b + r

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        b = torch.bernoulli(torch.sigmoid(self.logits).expand(*shape, len(self.binary)))
        loc = self.loc.expand(*shape, len(self.real))
        r = loc + self.scale.expand_as(loc) * torch.randn_like(loc)
        return self._join(b, r)

    @property
    def mean(self) -> Tensor:
        return self._join(torch.sigmoid(self.logits), self.loc)

    @property
    def variance(self) -> Tensor:
        p = torch.sigmoid(self.logits)
        return self._join(p * (1 - p), self.scale.square())


class MixedEmission(nn.Module):
    """The mixed-columns emission (M1): Bernoulli for ``binary_columns``, diagonal Gaussian for
    the other columns of x_t."""

    binary = False

    def __init__(self, in_dim: int, x_dim: int, binary_columns: Sequence[int] = (),
                 min_std: float = MIN_STD) -> None:
        super().__init__()
        self.x_dim = x_dim
        self.binary_columns = check_columns(binary_columns, x_dim)
        real = [d for d in range(x_dim) if d not in self.binary_columns]
        # Index tensors rebuilt from the options, not stored: a checkpoint holds weights.
        self.register_buffer("binary_index", torch.tensor(self.binary_columns, dtype=torch.long,
                                                          device="cpu"), persistent=False)
        self.register_buffer("real_index", torch.tensor(real, dtype=torch.long, device="cpu"),
                             persistent=False)
        self.logits = StepLinear(in_dim, len(self.binary_columns)) if self.binary_columns \
            else None
        self.head = GaussianHead(in_dim, len(real), min_std) if real else None

    def distribution(self, h: Tensor) -> MixedColumns:
        lead = h.shape[:-1]
        logits = self.logits(h) if self.logits is not None else h.new_zeros(*lead, 0)
        if self.head is not None:
            loc, scale = self.head(h)
        else:
            loc = scale = h.new_zeros(*lead, 0)
        return MixedColumns(logits, loc, scale, self.binary_index.to(h.device),
                            self.real_index.to(h.device))

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        return self.distribution(h).log_prob(x)

"""FusedGRU against nn.GRU: the same outputs, final states and gradients from the same weights
(float64, tight tolerance), gradcheck of the hand-written backward, and its refusals."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from srnn.nn.fused_gru import FusedGRU

SHAPES = [(3, 7, 5, 4), (2, 1, 3, 6), (1, 4, 2, 3)]  # (B, T, I, H), T = 1 among them


def pair(I: int, H: int, dtype: torch.dtype = torch.float64, seed: int = 0  # noqa: E741
         ) -> tuple[nn.GRU, FusedGRU]:
    torch.manual_seed(seed)
    ref = nn.GRU(I, H, batch_first=True).to(dtype)
    fused = FusedGRU(I, H).to(dtype)
    fused.load_state_dict(ref.state_dict())  # the same parameter names and shapes
    return ref, fused


def inputs(B: int, T: int, I: int, H: int, with_h0: bool,  # noqa: E741
           dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor | None]:
    x = torch.randn(B, T, I, dtype=dtype, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=dtype, requires_grad=True) if with_h0 else None
    return x, h0


def case(shape: tuple[int, ...], with_h0: bool
         ) -> tuple[nn.GRU, FusedGRU, Tensor, Tensor | None]:
    """The two GRUs with the same weights, an input and h_0 (or None) of ``shape``."""
    B, T, I, H = shape  # noqa: E741
    return (*pair(I, H), *inputs(B, T, I, H, with_h0))


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_outputs_and_final_state_equal_nn_gru(shape: tuple[int, ...], with_h0: bool) -> None:
    B, T, _, H = shape
    ref, fused, x, h0 = case(shape, with_h0)
    want_out, want_h = ref(x, h0)
    got_out, got_h = fused(x, h0)
    assert got_out.shape == (B, T, H) and got_h.shape == (1, B, H)
    torch.testing.assert_close(got_out, want_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_h, want_h, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the forward loop that keeps nothing
        eval_out, eval_h = fused(x, h0)
    torch.testing.assert_close(eval_out, want_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(eval_h, want_h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_equal_nn_gru_autograd(shape: tuple[int, ...], with_h0: bool) -> None:
    B, T, _, H = shape
    ref, fused, x, h0 = case(shape, with_h0)
    w_out, w_h = torch.randn(B, T, H, dtype=x.dtype), torch.randn(1, B, H, dtype=x.dtype)
    leaves = [x] + ([h0] if h0 is not None else [])

    def grads(gru: nn.Module) -> tuple[Tensor, ...]:
        out, h = gru(x, h0)  # a loss that reads both outputs, every step and unit differently
        return torch.autograd.grad((out * w_out).sum() + (h * w_h).sum(),
                                   leaves + list(gru.parameters()))

    for got, want in zip(grads(fused), grads(ref), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_parameter_gradients_alone_equal_nn_gru_in_float32() -> None:
    ref, fused = pair(6, 5, torch.float32, seed=1)
    x = torch.randn(4, 9, 6)  # no input gradient asked for
    for gru in (ref, fused):
        out, h = gru(x)
        (out.square().sum() + h.sum()).backward()
    for (name, p), q in zip(fused.named_parameters(), ref.parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)


def test_gradcheck_of_the_hand_written_backward() -> None:
    _, fused = pair(2, 3)
    x, h0 = inputs(2, 3, 2, 3, with_h0=True)
    names = [n for n, _ in fused.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in fused.parameters()]

    def run(x: Tensor, h0: Tensor, *ps: Tensor) -> tuple[Tensor, Tensor]:
        return functional_call(fused, dict(zip(names, ps, strict=True)), (x, h0))

    assert torch.autograd.gradcheck(run, (x, h0, *params))


def test_double_backward_and_bad_shapes_are_refused() -> None:
    _, fused = pair(2, 3)
    x, h0 = inputs(2, 3, 2, 3, with_h0=True)
    out, _ = fused(x, h0)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(ValueError, match="h_0"):
        fused(x, h0[0])
    with pytest.raises(ValueError, match="T >= 1"):
        fused(x[:, :0])
    with pytest.raises(ValueError, match="one layer"):
        FusedGRU(2, 3, num_layers=2)

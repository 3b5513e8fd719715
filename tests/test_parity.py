"""Every kernel x compiled backend x dtype x layout x option against the NumPy reference,
over many consecutive steps with the state carried over; and the reference against
torch.optim where the registry names a peer."""
import numpy as np
import pytest
from testing_settings import COMPILED_BACKENDS, DTYPES, TOLERANCE
from kernel_cases import CASES, case_id, make_arrays, make_grad, step

from fastoptim._registry import KERNELS

N_STEPS = 50

# 1-D sizes straddle every SIMD width (4, 8, 16 lanes) so both the vector body and the
# scalar tail of each loop run; 2-D arrays in C and F order.
SHAPES = [((n,), "C") for n in (0, 1, 7, 8, 15, 16, 17, 1000, 100003)] + [
    ((37, 29), "C"), ((37, 29), "F"), ((3, 4, 5), "F")]


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,order", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_reference_over_many_steps(case, shape, order, dtype, backend, rng):
    kernel, opts = case
    ours = make_arrays(kernel, opts, shape, dtype, order, rng)
    ref = [ours[0].copy(order="K"), [s.copy(order="K") for s in ours[1]],
           {k: s.copy(order="K") for k, s in ours[2].items()}]
    start = ours[0].copy()
    for t in range(1, N_STEPS + 1):
        grad = make_grad(shape, dtype, order, rng)
        assert step(kernel, opts, ours[0], grad, ours[1], ours[2], t, backend) is None
        step(kernel, opts, ref[0], grad, ref[1], ref[2], t, "numpy")
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(ours[0], ref[0], **tol, err_msg="param")
    for i, (a, b) in enumerate(zip(ours[1], ref[1])):
        np.testing.assert_allclose(a, b, **tol, err_msg=f"state {i}")
    for name in ours[2]:
        np.testing.assert_allclose(ours[2][name], ref[2][name], **tol, err_msg=name)
    assert ours[0].dtype == dtype
    if ours[0].size:
        # every element moved: a vector path that skipped the tail would leave some behind
        assert np.all(ours[0] != start)


# the examples whose kernel has a torch.optim peer that computes the same (the registry's
# TorchPeer.differs_when: momentum with dampening starts torch's buffer at the gradient)
TORCH_CASES = [(kernel, opts) for kernel, opts in CASES
               if KERNELS[kernel].torch and KERNELS[kernel].torch.agrees(KERNELS[kernel], opts)]


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_matches_torch_optim(case, rng):
    """Every such example against its torch.optim peer over many steps, in float64."""
    torch = pytest.importorskip("torch")
    kernel, opts = case
    spec = KERNELS[kernel]
    shape = (37, 29)
    ours = make_arrays(kernel, opts, shape, np.float64, "C", rng)
    start = ours[0].copy()
    tensor = torch.from_numpy(ours[0].copy())
    # torch keeps NAdam's mu_product in its default dtype: float64 here, as ours is (ASGD's
    # eta and mu are rounded to torch's float32 default on our side, so it keeps float32)
    default = torch.get_default_dtype()
    if spec.carried:
        torch.set_default_dtype(torch.float64)
    try:
        peer = getattr(torch.optim, spec.torch.optimizer)(
            [tensor], **spec.torch.kwargs(spec, opts), foreach=False)
        for t in range(1, N_STEPS + 1):
            grad = make_grad(shape, np.float64, "C", rng)
            step(kernel, opts, ours[0], grad, ours[1], ours[2], t, "numpy")
            tensor.grad = torch.from_numpy(grad)
            peer.step()
    finally:
        torch.set_default_dtype(default)
    np.testing.assert_allclose(ours[0], tensor.numpy(), rtol=1e-10, atol=1e-12)
    assert not np.array_equal(ours[0], start)

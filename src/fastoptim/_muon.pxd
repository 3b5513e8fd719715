# cython: language_level=3
"""Muon's element-wise kernels (``csrc/muon.h``), for other Cython code to ``cimport``::

    from fastoptim._muon cimport muon_momentum_kernel, muon_apply_kernel

The contract of :mod:`fastoptim.kernels` holds (``n >= 0``, contiguous aligned buffers in
one order, no aliasing, ``noexcept nogil``, nothing checked). The Newton-Schulz iteration
between the two passes is the caller's (matrix products); see
:func:`fastoptim.optimizers.muon.muon_step` for the whole step. ``floating`` scalars are
rounded to the element type at the call.
"""
from cython cimport floating


# One pass: momentum_buffer = lerp(momentum_buffer, grad, w) (torch's
# ``buf.lerp_(grad, 1 - momentum)``: w = 1 - momentum); update = lerp(grad, buffer, mu)
# with nesterov (torch's ``grad.lerp(buf, momentum)``), else the buffer. lerp(a, b, w) is
# torch's: a + w*(b - a) when w_small (|w| < 0.5), else b - (b - a)*one_minus_w.
# Returns sum(update^2) (double precision, fixed order: chunks whose boundaries depend on
# n alone, eight lanes each combined pairwise, the chunks added in order).
cdef double muon_momentum_kernel(
    const floating* grad,           # IN
    floating* momentum_buffer,      # IN/OUT
    floating* update,               # OUT  (the Newton-Schulz input)
    Py_ssize_t n,
    floating w,                     # IN  1 - momentum (in the element type)
    floating one_minus_w,           # IN  1 - w (in the element type)
    bint w_small,                   # IN  |w| < 0.5
    bint nesterov,                  # IN
    floating mu,                    # IN  momentum (in the element type)
    floating one_minus_mu,          # IN  1 - mu (in the element type)
    bint mu_small,                  # IN  |mu| < 0.5
) noexcept nogil

# One pass: param = param*param_scale + neg_lr*update (param_scale = 1 - lr*weight_decay,
# neg_lr = -adjusted_lr).
cdef void muon_apply_kernel(
    floating* param,                # IN/OUT
    const floating* update,         # IN
    Py_ssize_t n,
    floating param_scale,           # IN
    floating neg_lr,                # IN
) noexcept nogil

# cython: language_level=3
"""fastoptim's C-level kernels, for other Cython code to ``cimport``.

    from fastoptim.kernels cimport adam_kernel

Every kernel is one fused, in-place pass over ``n`` elements: it reads each element of its
inputs once and writes each element of its outputs once, allocates nothing, never raises and
holds no GIL (``noexcept nogil``). ``floating`` is Cython's fused type: call it with ``float*``
or ``double*`` and the matching scalar type.

Contract (the caller's job; nothing is checked here):
- every pointer addresses ``n`` contiguous elements (``n >= 0``); arrays of any shape may be
  passed as long as all are C-contiguous or all F-contiguous, so element ``i`` of each pairs up;
- no two arrays overlap (``grad``/``value`` may be read-only: it is ``const``);
- optional state (``NULL`` allowed) is documented per kernel;
- the scalars are *per-call coefficients*, computed once by the caller from the user-level
  hyperparameters. :mod:`fastoptim.functional` computes them with the same formulas for every
  compiled backend; the formulas are repeated below. ``grad_sign`` is ``-1`` to maximize,
  ``+1`` to minimize.

Arguments are marked ``# IN`` (read) or ``# IN/OUT`` (read and updated in place).
"""
from cython cimport floating


cdef void sgd_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    Py_ssize_t n,                   # IN  number of elements
    floating lr,                    # IN
    floating grad_sign,             # IN  -1 to maximize, +1 to minimize
    floating weight_decay,          # IN  L2 coefficient (0 for none)
) noexcept nogil
# d = grad_sign*g + weight_decay*p;  p -= lr*d


cdef void momentum_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* velocity,             # IN/OUT  the momentum buffer (starts at zero)
    Py_ssize_t n,                   # IN
    floating lr,                    # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating momentum,              # IN
    floating one_minus_dampening,   # IN  1 - dampening
    bint nesterov,                  # IN
) noexcept nogil
# d = grad_sign*g + wd*p;  v = momentum*v + (1-dampening)*d
# p -= lr*(d + momentum*v) if nesterov else lr*v


cdef void rmsprop_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* square_avg,           # IN/OUT
    floating* momentum_buffer,      # IN/OUT  NULL when momentum == 0
    floating* grad_avg,             # IN/OUT  NULL unless centered
    Py_ssize_t n,                   # IN
    floating lr,                    # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating alpha,                 # IN
    floating one_minus_alpha,       # IN  1 - alpha
    floating eps,                   # IN
    floating momentum,              # IN  used only when momentum_buffer != NULL
) noexcept nogil
# d = grad_sign*g + wd*p;  s = alpha*s + (1-alpha)*d*d
# centered: a = alpha*a + (1-alpha)*d;  avg = sqrt(s - a*a) + eps   else avg = sqrt(s) + eps
# momentum: b = momentum*b + d/avg; p -= lr*b                       else p -= lr*d/avg


cdef void adam_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT  first moment m
    floating* exp_avg_sq,           # IN/OUT  second moment v
    floating* max_exp_avg_sq,       # IN/OUT  AMSGrad running max of v; NULL for plain Adam
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN  L2 coefficient (0 for AdamW)
    floating param_scale,           # IN  AdamW: 1 - lr*weight_decay; Adam: 1
    floating beta1,                 # IN
    floating one_minus_beta1,       # IN
    floating beta2,                 # IN
    floating one_minus_beta2,       # IN
    floating step_size,             # IN  lr / (1 - beta1**t)
    floating inv_bias_correction2_sqrt,  # IN  1 / sqrt(1 - beta2**t)
    floating eps,                   # IN
) noexcept nogil
# d = grad_sign*g + wd*p;  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d
# amsgrad: vmax = max(vmax, v), use vmax for v below
# p = param_scale*p - step_size * m / (sqrt(v)*inv_bias_correction2_sqrt + eps)


cdef void adagrad_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* state_sum,            # IN/OUT
    Py_ssize_t n,                   # IN
    floating clr,                   # IN  lr / (1 + (t-1)*lr_decay)
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating eps,                   # IN
) noexcept nogil
# d = grad_sign*g + wd*p;  G += d*d;  p -= clr * d / (sqrt(G) + eps)


cdef void ewa_kernel(
    floating* average,              # IN/OUT
    const floating* value,          # IN
    Py_ssize_t n,                   # IN
    floating beta,                  # IN
    floating one_minus_beta,        # IN
) noexcept nogil
# average = beta*average + (1-beta)*value

# cython: language_level=3
"""fastoptim's C-level kernels, for other Cython code to ``cimport``.

    from fastoptim.kernels cimport adam_kernel
    from fastoptim.coefficients cimport adam_coefficients    # the per-call scalars

Build with ``fastoptim.get_include()`` on Cython's include path; at run time ``fastoptim``
must be importable (importing the consumer binds these functions from
``fastoptim.kernels``' C-API table; nothing is copied into the consumer). A complete,
tested consumer is ``examples/embedding/consumer.pyx``.

Every kernel is one fused, in-place pass over ``n`` elements: it reads each element of its
inputs once and writes each element of its outputs once, allocates nothing, never raises and
holds no GIL (``noexcept nogil``); call it inside ``with nogil:``. ``floating`` is Cython's
fused type: pass ``float*`` or ``double*`` (all arrays of one type) and the scalars of any
floating type; with ``float*`` they are rounded to float at the call, as the Python layer
does (it computes the scalars in double).

Contract (the caller's job; nothing is checked here):

- ``n >= 0``; with ``n == 0`` no pointer is dereferenced;
- every pointer addresses ``n`` contiguous, aligned elements in native byte order. Arrays of
  any shape may be passed as flat buffers as long as all are C-contiguous or all
  F-contiguous, so that element ``i`` of each pairs up;
- no aliasing: no two arrays overlap, not even partially (the update is in place, so each
  array is its own output). ``grad``/``value`` is only read (``const``) and may be a
  read-only buffer;
- optional state pointers (``NULL`` allowed) are documented per kernel; every state buffer
  starts at zero on the first step;
- thread safety: the kernels keep no global state, so concurrent calls on disjoint arrays
  are safe; concurrent calls that write the same array are a data race.

Per-call coefficients: a deliberate decision. The kernels take the *per-call coefficients*,
not the user-level hyperparameters, and computing them is the caller's job, once per step
(never once per element, and once for many arrays in a multi-tensor step). ``grad_sign`` is
``-1`` to maximize, ``+1`` to minimize. With ``t`` the 1-based step count:

============  ==============================================================================
kernel        coefficients from the hyperparameters
============  ==============================================================================
sgd           ``lr, grad_sign, weight_decay``
momentum      ``lr, grad_sign, weight_decay, momentum, one_minus_dampening = 1 - dampening,``
              ``nesterov``
rmsprop       ``lr, grad_sign, weight_decay, alpha, one_minus_alpha = 1 - alpha, eps,``
              ``momentum``
adam          ``grad_sign``; Adam: ``weight_decay, param_scale = 1``; AdamW (decoupled):
              ``weight_decay = 0, param_scale = 1 - lr*weight_decay``; ``beta1,``
              ``one_minus_beta1 = 1 - beta1, beta2, one_minus_beta2 = 1 - beta2,``
              ``step_size = lr / (1 - beta1**t),``
              ``inv_bias_correction2_sqrt = 1 / sqrt(1 - beta2**t), eps``
adagrad       ``clr = lr / (1 + (t - 1)*lr_decay), grad_sign, weight_decay, eps``
ewa           ``beta, one_minus_beta = 1 - beta``
rprop         ``grad_sign, lr, etaminus, etaplus, step_size_min, step_size_max,``
              ``first_step = (t == 1)``
asgd          ``grad_sign, weight_decay, param_scale = 1 - lambd*eta,``
              ``eta = lr / (1 + lambd*lr*(t - 1))**alpha, mu = 1 / max(1, t - 1 - t0)``
              (eta and mu rounded to float32, as torch keeps them)
============  ==============================================================================

``fastoptim/coefficients.pxd`` computes each row with ``cdef inline ... noexcept nogil``
helpers (``adam_coefficients(step, lr, beta1, beta2, eps, weight_decay,
decoupled_weight_decay, maximize)`` returns an ``AdamCoefficients`` struct whose fields are
the scalars above, in argument order); ``fastoptim._coefficients``, which
:mod:`fastoptim.functional` uses for every compiled backend, is compiled from them. The hyperparameter ranges are
those of the Python API (``lr >= 0``, ``0 <= beta < 1``, ``eps > 0``, ``t >= 1``, ...).
The per-element formula is written under each declaration.

Stability: these declarations are part of the public API and stable within a major version
(semver). The binding is by name and signature, so a consumer built against another
signature fails at import with a clear error rather than calling the wrong function.

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
    floating* momentum_buffer,      # IN/OUT  the velocity v (starts at zero)
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


cdef void rprop_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* prev,                 # IN/OUT  the previous (masked) gradient (starts at zero)
    floating* step_size,            # IN/OUT  per-element step sizes (only written when first_step)
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating lr,                    # IN  the step size the first step starts from
    floating etaminus,              # IN  0 < etaminus < 1
    floating etaplus,               # IN  etaplus > 1
    floating step_size_min,         # IN
    floating step_size_max,         # IN
    bint first_step,                # IN  t == 1: start from lr instead of reading step_size
) noexcept nogil
# g = grad_sign*grad;  f = etaplus if g*prev > 0, etaminus if g*prev < 0, else 1 (NaN too)
# s = clamp((lr if first_step else s) * f, step_size_min, step_size_max)
# g = 0 where g*prev < 0;  prev = g;  p -= sign(g)*s      (sign(NaN) = 0, as torch.sign)


cdef void asgd_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* ax,                   # IN/OUT  the averaged parameters (starts at zero)
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating param_scale,           # IN  1 - lambd*eta
    floating eta,                   # IN  lr / (1 + lambd*lr*(t-1))**alpha (float32-rounded)
    floating mu,                    # IN  1 / max(1, t-1-t0) (float32-rounded)
) noexcept nogil
# d = grad_sign*g + wd*p;  p = p*param_scale;  p = p - eta*d
# ax = p if mu == 1 else ax + (p - ax)*mu

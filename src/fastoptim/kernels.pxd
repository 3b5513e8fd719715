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
              ``momentum, eps_root``
adam          ``grad_sign``; Adam: ``weight_decay, param_scale = 1``; AdamW (decoupled):
              ``weight_decay = 0, param_scale = 1 - lr*weight_decay``; ``beta1,``
              ``one_minus_beta1 = 1 - beta1, beta2, one_minus_beta2 = 1 - beta2,``
              ``step_size = lr / (1 - beta1**t),``
              ``inv_bias_correction2_sqrt = 1 / sqrt(1 - beta2**t), eps, eps_root``
adagrad       ``clr = lr / (1 + (t - 1)*lr_decay), grad_sign, weight_decay, eps``
ewa           ``beta, one_minus_beta = 1 - beta``
rprop         ``grad_sign, lr, etaminus, etaplus, step_size_min, step_size_max,``
              ``first_step = (t == 1)``
asgd          ``grad_sign, weight_decay, param_scale = 1 - lambd*eta,``
              ``eta = lr / (1 + lambd*lr*(t - 1))**alpha, mu = 1 / max(1, t - 1 - t0)``
              (eta and mu rounded to float32, as torch keeps them)
adamax        ``grad_sign, weight_decay, beta1, one_minus_beta1 = 1 - beta1, beta2, eps,``
              ``step_size = lr / (1 - beta1**t)``
lion          ``lr, grad_sign, weight_decay, beta1, one_minus_beta1 = 1 - beta1, beta2,``
              ``one_minus_beta2 = 1 - beta2``
adadelta      ``lr, grad_sign, weight_decay, rho, one_minus_rho = 1 - rho, eps``
radam         ``grad_sign, weight_decay, param_scale`` (as adam), ``beta1, one_minus_beta1,``
              ``beta2, one_minus_beta2, bias_correction1 = 1 - beta1**t, lr,``
              ``rectify = rho_t > 5, rect = r_t, bias_correction2_sqrt = (1 - beta2**t)**0.5,``
              ``eps`` (``rho_inf = 2/(1-beta2) - 1, rho_t = rho_inf - 2*t*beta2**t/(1-beta2**t)``)
nadam         ``grad_sign, weight_decay, param_scale`` (as adam), ``beta1, one_minus_beta1,``
              ``beta2, one_minus_beta2, bias_correction2 = 1 - beta2**t, eps,``
              ``grad_coef = -lr*(1-mu_t)/(1-P_t), exp_avg_coef = -lr*mu_{t+1}/(1-P_t*mu_{t+1})``
              with ``mu_t = beta1*(1 - 0.5*0.96**(t*momentum_decay))`` and ``P_t`` the running
              product ``mu_1*...*mu_t`` (the struct's extra field ``mu_product``)
============  ==============================================================================

``fastoptim/coefficients.pxd`` computes each row with ``cdef inline ... noexcept nogil``
helpers (``adam_coefficients(step, lr, beta1, beta2, eps, weight_decay,
decoupled_weight_decay, maximize, eps_root=0.0)`` returns an ``AdamCoefficients`` struct whose fields are
the scalars above, in argument order); ``fastoptim._coefficients``, which
:mod:`fastoptim.functional` uses for every compiled backend, is compiled from them. The hyperparameter ranges are
those of the Python API (``lr >= 0``, ``0 <= beta < 1``, ``eps > 0``, ``t >= 1``, ...;
Adam and RMSprop: ``eps_root >= 0``, and ``eps >= 0`` with ``eps_root > 0``).
The per-element formula is written under each declaration.

Stability: these declarations are part of the public API and stable within a major version
(semver). An argument added later comes last and is optional (``=*``, its default keeping
the old formula): ``eps_root`` of ``adam_kernel`` and ``rmsprop_kernel`` (default 0), so a
caller's source compiles unchanged; a module compiled against the old declaration must be
rebuilt (the signature differs). The binding is by name and signature, so a consumer built against another
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
    floating eps_root=*,            # IN  optional (default 0: torch's form), inside the root
) noexcept nogil
# d = grad_sign*g + wd*p;  s = alpha*s + (1-alpha)*d*d
# centered: a = alpha*a + (1-alpha)*d;  avg = sqrt(s - a*a + eps_root) + eps
# else avg = sqrt(s + eps_root) + eps
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
    floating eps_root=*,            # IN  optional (default 0: torch's form), inside the root
) noexcept nogil
# d = grad_sign*g + wd*p;  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d
# amsgrad: vmax = max(vmax, v), use vmax for v below
# eps_root == 0: p = param_scale*p - step_size * m / (sqrt(v)*inv_bias_correction2_sqrt + eps)
# else:          p = param_scale*p - step_size * m / (sqrt(v*ibc2 + eps_root) + eps),
#                ibc2 = inv_bias_correction2_sqrt**2 (so sqrt(v_hat + eps_root) + eps)


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


cdef void adamax_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT  first moment m
    floating* exp_inf,              # IN/OUT  infinity norm u
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating beta1,                 # IN
    floating one_minus_beta1,       # IN
    floating beta2,                 # IN
    floating eps,                   # IN
    floating step_size,             # IN  lr / (1 - beta1**t)
) noexcept nogil
# d = grad_sign*g + wd*p;  m = beta1*m + (1-beta1)*d;  u = max(beta2*u, |d| + eps)
# p -= step_size * m / u
cdef void radam_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT  first moment m
    floating* exp_avg_sq,           # IN/OUT  second moment v
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN  L2 coefficient (0 when decoupled)
    floating param_scale,           # IN  decoupled: 1 - lr*weight_decay; else 1
    floating beta1,                 # IN
    floating one_minus_beta1,       # IN
    floating beta2,                 # IN
    floating one_minus_beta2,       # IN
    floating bias_correction1,      # IN  1 - beta1**t
    floating lr,                    # IN
    bint rectify,                   # IN  rho_t > 5 (decided per call, from t)
    floating rect,                  # IN  the rectification term r_t (used when rectify)
    floating bias_correction2_sqrt, # IN  sqrt(1 - beta2**t) (used when rectify)
    floating eps,                   # IN
) noexcept nogil
# d = grad_sign*g + wd*p;  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d
# u = m / bias_correction1 * lr
# rectify: u = u * (bias_correction2_sqrt / (sqrt(v) + eps)) * rect
# p = param_scale*p - u

cdef void lion_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT  momentum m
    Py_ssize_t n,                   # IN
    floating lr,                    # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN  decoupled (0 for none)
    floating beta1,                 # IN
    floating one_minus_beta1,       # IN
    floating beta2,                 # IN
    floating one_minus_beta2,       # IN
) noexcept nogil
# d = grad_sign*g;  u = sign(beta1*m + (1-beta1)*d)  (np.sign: 0 for +-0, NaN for NaN)
# p -= lr*(u + wd*p);  m = beta2*m + (1-beta2)*d
cdef void nadam_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT  first moment m
    floating* exp_avg_sq,           # IN/OUT  second moment v
    Py_ssize_t n,                   # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN  L2 coefficient (0 when decoupled)
    floating param_scale,           # IN  decoupled: 1 - lr*weight_decay; else 1
    floating beta1,                 # IN
    floating one_minus_beta1,       # IN
    floating beta2,                 # IN
    floating one_minus_beta2,       # IN
    floating bias_correction2,      # IN  1 - beta2**t
    floating eps,                   # IN
    floating grad_coef,             # IN  -lr * (1 - mu_t) / (1 - mu_product_t)
    floating exp_avg_coef,          # IN  -lr * mu_{t+1} / (1 - mu_product_t * mu_{t+1})
) noexcept nogil
# d = grad_sign*g + wd*p;  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d
# denom = sqrt(v / bias_correction2) + eps
# p = (param_scale*p + grad_coef * d / denom) + exp_avg_coef * m / denom

cdef void adadelta_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* square_avg,           # IN/OUT  running average v of g*g
    floating* acc_delta,            # IN/OUT  running average u of delta*delta
    Py_ssize_t n,                   # IN
    floating lr,                    # IN
    floating grad_sign,             # IN
    floating weight_decay,          # IN
    floating rho,                   # IN
    floating one_minus_rho,         # IN  1 - rho
    floating eps,                   # IN
) noexcept nogil
# d = grad_sign*g + wd*p;  v = rho*v + (1-rho)*d*d;  delta = sqrt(u + eps) / sqrt(v + eps) * d
# u = rho*u + (1-rho)*delta*delta;  p -= lr*delta

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


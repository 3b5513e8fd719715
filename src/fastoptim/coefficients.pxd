# cython: language_level=3
"""Per-call coefficients of fastoptim's C-level kernels, for other Cython code to ``cimport``.

    from fastoptim.coefficients cimport AdamCoefficients, adam_coefficients

The kernels in ``fastoptim/kernels.pxd`` take *per-call coefficients* (bias corrections,
step sizes, ``1 - beta``, ...) rather than the user-level hyperparameters: they are computed
once per step by the caller, never once per element. These ``inline`` helpers compute them
from the user-level hyperparameters. They are the single source of these formulas: the
Python layer's ``fastoptim._coefficients`` is compiled from them (a test checks that both
agree bit for bit), so a Cython caller gets the same update as ``fastoptim.adam_step``.

Each helper returns a struct whose fields are the kernel's scalar arguments **in the
kernel's argument order**, with the same names. The helpers are pure C (``noexcept nogil``),
validate nothing and never raise: the caller keeps the hyperparameters in the documented
ranges (``lr >= 0``, ``0 <= beta < 1``, ``eps > 0``, ``step >= 1``, ...), as
``fastoptim.functional`` does for Python callers. Adam's and RMSprop's ``eps_root``
(``>= 0``, default 0; ``eps`` may be 0 when it is positive) is their last argument and the
last field of their struct.

This file holds only inline code and struct declarations, so cimporting it adds no runtime
import; the kernels themselves are bound when the consumer module is imported (through
``fastoptim.kernels``' C-API table), so ``fastoptim`` must be importable at that point.
"""
cimport cython
from libc.math cimport pow, sqrt

cdef extern from *:
    """
    #include <math.h>
    /* libm's pow called through a volatile pointer, as Python's x ** 0.5 calls it: no
       compiler may rewrite the call (clang turns pow(x, 0.5) into sqrt(x) when math errno
       is off, its default on macOS, and the two can differ in the last bit). */
    #if defined(__GNUC__) || defined(__clang__)
    __attribute__((unused))
    #endif
    static double (*volatile fo_libm_pow)(double, double) = pow;
    """
    double libm_pow "fo_libm_pow"(double x, double y) noexcept nogil


ctypedef struct SGDCoefficients:
    double lr
    double grad_sign                # -1 to maximize, +1 to minimize
    double weight_decay


ctypedef struct MomentumCoefficients:
    double lr
    double grad_sign
    double weight_decay
    double momentum
    double one_minus_dampening      # 1 - dampening
    bint nesterov


ctypedef struct RMSpropCoefficients:
    double lr
    double grad_sign
    double weight_decay
    double alpha
    double one_minus_alpha          # 1 - alpha
    double eps
    double momentum
    double eps_root                 # inside the square root: sqrt(s + eps_root) + eps


ctypedef struct AdamCoefficients:
    double grad_sign
    double weight_decay             # L2 term: weight_decay, or 0 when decoupled (AdamW)
    double param_scale              # AdamW: 1 - lr*weight_decay; Adam: 1
    double beta1
    double one_minus_beta1
    double beta2
    double one_minus_beta2
    double step_size                # lr / (1 - beta1**step)
    double inv_bias_correction2_sqrt  # 1 / sqrt(1 - beta2**step)
    double eps
    double eps_root                 # inside the square root: sqrt(v_hat + eps_root) + eps


ctypedef struct AdagradCoefficients:
    double clr                      # lr / (1 + (step - 1)*lr_decay)
    double grad_sign
    double weight_decay
    double eps


ctypedef struct EWACoefficients:
    double beta
    double one_minus_beta


ctypedef struct RpropCoefficients:
    double grad_sign
    double lr                       # the step size of the first step (torch's initial fill)
    double etaminus
    double etaplus
    double step_size_min
    double step_size_max
    bint first_step                 # step == 1


ctypedef struct AsgdCoefficients:
    double grad_sign
    double weight_decay
    double param_scale              # 1 - lambd*eta
    double eta                      # lr / (1 + lambd*lr*(step - 1))**alpha, float32-rounded
    double mu                       # 1 / max(1, step - 1 - t0), float32-rounded


ctypedef struct LAMBCoefficients:
    double grad_sign
    double beta1
    double one_minus_beta1
    double beta2
    double one_minus_beta2
    double inv_bias_correction1     # 1 / (1 - beta1**step)
    double inv_bias_correction2     # 1 / (1 - beta2**step)
    double eps_root
    double eps
    double weight_decay
    double lr


cdef inline double grad_sign(bint maximize) noexcept nogil:
    """``-1.0`` to maximize, ``+1.0`` to minimize."""
    return -1.0 if maximize else 1.0


cdef inline SGDCoefficients sgd_coefficients(
        double lr, double weight_decay, bint maximize) noexcept nogil:
    cdef SGDCoefficients c
    c.lr = lr
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    return c


cdef inline MomentumCoefficients momentum_coefficients(
        double lr, double momentum, double dampening, bint nesterov, double weight_decay,
        bint maximize) noexcept nogil:
    cdef MomentumCoefficients c
    c.lr = lr
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.momentum = momentum
    c.one_minus_dampening = 1.0 - dampening
    c.nesterov = nesterov
    return c


cdef inline RMSpropCoefficients rmsprop_coefficients(
        double lr, double alpha, double eps, double weight_decay, double momentum,
        bint maximize, double eps_root=0.0) noexcept nogil:
    cdef RMSpropCoefficients c
    c.lr = lr
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.alpha = alpha
    c.one_minus_alpha = 1.0 - alpha
    c.eps = eps
    c.momentum = momentum
    c.eps_root = eps_root
    return c


@cython.cdivision(True)
cdef inline AdamCoefficients adam_coefficients(
        long long step, double lr, double beta1, double beta2, double eps,
        double weight_decay, bint decoupled_weight_decay, bint maximize,
        double eps_root=0.0) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call)."""
    cdef AdamCoefficients c
    c.grad_sign = grad_sign(maximize)
    if decoupled_weight_decay:
        c.weight_decay = 0.0
        c.param_scale = 1.0 - lr * weight_decay
    else:
        c.weight_decay = weight_decay
        c.param_scale = 1.0
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.one_minus_beta2 = 1.0 - beta2
    c.step_size = lr / (1.0 - pow(beta1, <double>step))
    c.inv_bias_correction2_sqrt = 1.0 / sqrt(1.0 - pow(beta2, <double>step))
    c.eps = eps
    c.eps_root = eps_root
    return c


@cython.cdivision(True)
cdef inline AdagradCoefficients adagrad_coefficients(
        long long step, double lr, double lr_decay, double weight_decay, double eps,
        bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call)."""
    cdef AdagradCoefficients c
    c.clr = lr / (1.0 + <double>(step - 1) * lr_decay)
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.eps = eps
    return c


cdef inline EWACoefficients ewa_coefficients(double beta) noexcept nogil:
    cdef EWACoefficients c
    c.beta = beta
    c.one_minus_beta = 1.0 - beta
    return c


ctypedef struct AdamaxCoefficients:
    double grad_sign
    double weight_decay
    double beta1
    double one_minus_beta1
    double beta2
    double eps
    double step_size                # lr / (1 - beta1**step)


@cython.cdivision(True)
cdef inline AdamaxCoefficients adamax_coefficients(
        long long step, double lr, double beta1, double beta2, double eps,
        double weight_decay, bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call)."""
    cdef AdamaxCoefficients c
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.eps = eps
    c.step_size = lr / (1.0 - pow(beta1, <double>step))
    return c
ctypedef struct RadamCoefficients:
    double grad_sign
    double weight_decay             # L2 term: weight_decay, or 0 when decoupled
    double param_scale              # decoupled: 1 - lr*weight_decay; else 1
    double beta1
    double one_minus_beta1
    double beta2
    double one_minus_beta2
    double bias_correction1         # 1 - beta1**step
    double lr
    bint rectify                    # rho_t > 5
    double rect                     # the rectification term r_t (1 when not rectify)
    double bias_correction2_sqrt    # (1 - beta2**step) ** 0.5
    double eps


@cython.cdivision(True)
cdef inline RadamCoefficients radam_coefficients(
        long long step, double lr, double beta1, double beta2, double eps,
        double weight_decay, bint decoupled_weight_decay, bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call). The
    scalars are computed in torch's order (``** 0.5`` as libm's ``pow(x, 0.5)``, never a
    compiler's square root), so the switch ``rho_t > 5`` flips at the same step as torch's
    and ``rect`` has its bits."""
    cdef RadamCoefficients c
    cdef double t = <double>step
    cdef double bias_correction2 = 1.0 - pow(beta2, t)
    cdef double rho_inf = 2.0 / (1.0 - beta2) - 1.0
    cdef double rho_t = rho_inf - 2.0 * t * pow(beta2, t) / bias_correction2
    c.grad_sign = grad_sign(maximize)
    if decoupled_weight_decay:
        c.weight_decay = 0.0
        c.param_scale = 1.0 - lr * weight_decay
    else:
        c.weight_decay = weight_decay
        c.param_scale = 1.0
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.one_minus_beta2 = 1.0 - beta2
    c.bias_correction1 = 1.0 - pow(beta1, t)
    c.lr = lr
    c.rectify = rho_t > 5.0
    if c.rectify:
        c.rect = libm_pow((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                          / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t), 0.5)
    else:
        c.rect = 1.0
    c.bias_correction2_sqrt = libm_pow(bias_correction2, 0.5)
    c.eps = eps
    return c

@cython.cdivision(True)
cdef inline LAMBCoefficients lamb_coefficients(
        long long step, double lr, double beta1, double beta2, double eps, double eps_root,
        double weight_decay, bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call). LAMB is
    not a registry kernel (its trust ratio is a reduction): ``fastoptim._lamb`` runs it."""
    cdef LAMBCoefficients c
    c.grad_sign = grad_sign(maximize)
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.one_minus_beta2 = 1.0 - beta2
    c.inv_bias_correction1 = 1.0 / (1.0 - pow(beta1, <double>step))
    c.inv_bias_correction2 = 1.0 / (1.0 - pow(beta2, <double>step))
    c.eps_root = eps_root
    c.eps = eps
    c.weight_decay = weight_decay
    c.lr = lr
    return c

ctypedef struct LionCoefficients:
    double lr
    double grad_sign
    double weight_decay             # decoupled
    double beta1
    double one_minus_beta1
    double beta2
    double one_minus_beta2


cdef inline LionCoefficients lion_coefficients(
        double lr, double beta1, double beta2, double weight_decay, bint maximize
        ) noexcept nogil:
    cdef LionCoefficients c
    c.lr = lr
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.one_minus_beta2 = 1.0 - beta2
    return c
ctypedef struct NadamCoefficients:
    double grad_sign
    double weight_decay             # L2 term: weight_decay, or 0 when decoupled
    double param_scale              # decoupled: 1 - lr*weight_decay; else 1
    double beta1
    double one_minus_beta1
    double beta2
    double one_minus_beta2
    double bias_correction2         # 1 - beta2**step
    double eps
    double grad_coef                # -lr * (1 - mu) / (1 - mu_product)
    double exp_avg_coef             # (-lr * mu_next) / (1 - mu_product * mu_next)
    double mu_product               # (not a kernel scalar) the running product after this step


@cython.cdivision(True)
cdef inline NadamCoefficients nadam_coefficients(
        long long step, double mu_product, double lr, double beta1, double beta2, double eps,
        double weight_decay, double momentum_decay, bint decoupled_weight_decay,
        bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t of this update (1 on the first call);
    ``mu_product`` the product of mu_1 ... mu_{t-1} (1 before the first step). The momentum
    schedule ``mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay))`` and the step sizes
    are computed in torch's order; the field ``mu_product`` returns the product with mu_t,
    to pass to the next step."""
    cdef NadamCoefficients c
    cdef double t = <double>step
    cdef double mu = beta1 * (1.0 - 0.5 * pow(0.96, t * momentum_decay))
    cdef double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * momentum_decay))
    cdef double product = mu_product * mu
    c.grad_sign = grad_sign(maximize)
    if decoupled_weight_decay:
        c.weight_decay = 0.0
        c.param_scale = 1.0 - lr * weight_decay
    else:
        c.weight_decay = weight_decay
        c.param_scale = 1.0
    c.beta1 = beta1
    c.one_minus_beta1 = 1.0 - beta1
    c.beta2 = beta2
    c.one_minus_beta2 = 1.0 - beta2
    c.bias_correction2 = 1.0 - pow(beta2, t)
    c.eps = eps
    c.grad_coef = -lr * (1.0 - mu) / (1.0 - product)
    c.exp_avg_coef = (-lr * mu_next) / (1.0 - product * mu_next)
    c.mu_product = product
    return c

ctypedef struct AdadeltaCoefficients:
    double lr
    double grad_sign
    double weight_decay
    double rho
    double one_minus_rho            # 1 - rho
    double eps


cdef inline AdadeltaCoefficients adadelta_coefficients(
        double lr, double rho, double eps, double weight_decay, bint maximize
        ) noexcept nogil:
    cdef AdadeltaCoefficients c
    c.lr = lr
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.rho = rho
    c.one_minus_rho = 1.0 - rho
    c.eps = eps
    return c

cdef inline RpropCoefficients rprop_coefficients(
        long long step, double lr, double etaminus, double etaplus, double step_size_min,
        double step_size_max, bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t; the first step starts from ``lr`` (torch fills
    the step sizes with lr when it creates the state)."""
    cdef RpropCoefficients c
    c.grad_sign = grad_sign(maximize)
    c.lr = lr
    c.etaminus = etaminus
    c.etaplus = etaplus
    c.step_size_min = step_size_min
    c.step_size_max = step_size_max
    c.first_step = step == 1
    return c


@cython.cdivision(True)
cdef inline AsgdCoefficients asgd_coefficients(
        long long step, double lr, double lambd, double alpha, double t0, double weight_decay,
        bint maximize) noexcept nogil:
    """``step`` is the 1-based step count t. Step t uses the eta and mu torch computes at the
    end of step t - 1 (eta = lr, mu = 1 at t = 1), rounded to float32 as torch keeps them
    (0-dim tensors of its default dtype)."""
    cdef AsgdCoefficients c
    cdef double done = <double>(step - 1)
    c.grad_sign = grad_sign(maximize)
    c.weight_decay = weight_decay
    c.eta = <double><float>(lr / pow(1.0 + lambd * lr * done, alpha))
    c.param_scale = 1.0 - lambd * c.eta
    cdef double since = done - t0
    c.mu = <double><float>(1.0 / (since if since > 1.0 else 1.0))
    return c


# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend: one fused, in-place pass per optimizer step.

The ``cdef ... noexcept nogil`` kernels are declared in ``kernels.pxd`` (read it for their
contract; other Cython code may ``cimport`` them). Each is a single loop over raw pointers
that gcc vectorizes at ``-O3 -fno-math-errno``; loop-invariant choices (AMSGrad, Nesterov,
centered, momentum) are hoisted out of the loop so that the loop body has no branch.

The ``def`` functions at the bottom are the Python layer's entry points. They do **not**
validate: :mod:`fastoptim.functional` checks every array and hyperparameter first and passes
the per-call coefficients. Arrays may have any shape; they must be contiguous in one common
order, which the validation layer guarantees.
"""
from libc.math cimport sqrt, sqrtf
cimport numpy as cnp

cnp.import_array()

cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void sgd_kernel(floating* param, const floating* grad, Py_ssize_t n, floating lr,
                     floating grad_sign, floating weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        param[i] = param[i] - lr * (grad_sign * grad[i] + weight_decay * param[i])


cdef void momentum_kernel(floating* param, const floating* grad, floating* velocity,
                          Py_ssize_t n, floating lr, floating grad_sign, floating weight_decay,
                          floating momentum, floating one_minus_dampening,
                          bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, v
    if nesterov:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            v = momentum * velocity[i] + one_minus_dampening * d
            velocity[i] = v
            param[i] = param[i] - lr * (d + momentum * v)
    else:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            v = momentum * velocity[i] + one_minus_dampening * d
            velocity[i] = v
            param[i] = param[i] - lr * v


cdef void rmsprop_kernel(floating* param, const floating* grad, floating* square_avg,
                         floating* momentum_buffer, floating* grad_avg, Py_ssize_t n,
                         floating lr, floating grad_sign, floating weight_decay, floating alpha,
                         floating one_minus_alpha, floating eps,
                         floating momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, s, a, avg, b
    if grad_avg == NULL and momentum_buffer == NULL:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            s = alpha * square_avg[i] + one_minus_alpha * d * d
            square_avg[i] = s
            param[i] = param[i] - lr * d / (_sqrt(s) + eps)
    elif grad_avg == NULL:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            s = alpha * square_avg[i] + one_minus_alpha * d * d
            square_avg[i] = s
            b = momentum * momentum_buffer[i] + d / (_sqrt(s) + eps)
            momentum_buffer[i] = b
            param[i] = param[i] - lr * b
    elif momentum_buffer == NULL:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            s = alpha * square_avg[i] + one_minus_alpha * d * d
            a = alpha * grad_avg[i] + one_minus_alpha * d
            square_avg[i] = s
            grad_avg[i] = a
            param[i] = param[i] - lr * d / (_sqrt(s - a * a) + eps)
    else:
        for i in range(n):
            d = grad_sign * grad[i] + weight_decay * param[i]
            s = alpha * square_avg[i] + one_minus_alpha * d * d
            a = alpha * grad_avg[i] + one_minus_alpha * d
            square_avg[i] = s
            grad_avg[i] = a
            b = momentum * momentum_buffer[i] + d / (_sqrt(s - a * a) + eps)
            momentum_buffer[i] = b
            param[i] = param[i] - lr * b


cdef void adam_kernel(floating* param, const floating* grad, floating* exp_avg,
                      floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t n,
                      floating grad_sign, floating weight_decay, floating param_scale,
                      floating beta1, floating one_minus_beta1, floating beta2,
                      floating one_minus_beta2, floating step_size,
                      floating inv_bias_correction2_sqrt, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating p, d, m, v, vmax
    if max_exp_avg_sq == NULL:
        for i in range(n):
            p = param[i]
            d = grad_sign * grad[i] + weight_decay * p
            m = beta1 * exp_avg[i] + one_minus_beta1 * d
            v = beta2 * exp_avg_sq[i] + one_minus_beta2 * d * d
            exp_avg[i] = m
            exp_avg_sq[i] = v
            param[i] = param_scale * p - step_size * m / (
                _sqrt(v) * inv_bias_correction2_sqrt + eps)
    else:
        for i in range(n):
            p = param[i]
            d = grad_sign * grad[i] + weight_decay * p
            m = beta1 * exp_avg[i] + one_minus_beta1 * d
            v = beta2 * exp_avg_sq[i] + one_minus_beta2 * d * d
            vmax = max_exp_avg_sq[i]
            vmax = v if v > vmax else vmax
            exp_avg[i] = m
            exp_avg_sq[i] = v
            max_exp_avg_sq[i] = vmax
            param[i] = param_scale * p - step_size * m / (
                _sqrt(vmax) * inv_bias_correction2_sqrt + eps)


cdef void adagrad_kernel(floating* param, const floating* grad, floating* state_sum,
                         Py_ssize_t n, floating clr, floating grad_sign, floating weight_decay,
                         floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, s
    for i in range(n):
        d = grad_sign * grad[i] + weight_decay * param[i]
        s = state_sum[i] + d * d
        state_sum[i] = s
        param[i] = param[i] - clr * d / (_sqrt(s) + eps)


cdef void ewa_kernel(floating* average, const floating* value, Py_ssize_t n, floating beta,
                     floating one_minus_beta) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        average[i] = beta * average[i] + one_minus_beta * value[i]


# ---------------------------------------------------------------------------------------------
# Python entry points (unchecked: called by fastoptim.functional after validation)
# ---------------------------------------------------------------------------------------------

cdef inline bint _is_float32(object a):
    return cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32


cdef inline void* _data(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t _size(object a):
    return cnp.PyArray_SIZE(<cnp.ndarray>a)


def sgd(param, grad, double lr, double grad_sign, double weight_decay):
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef Py_ssize_t n = _size(param)
    if _is_float32(param):
        with nogil:
            sgd_kernel[float](<float*>p, <const float*>g, n, lr, grad_sign, weight_decay)
    else:
        with nogil:
            sgd_kernel[double](<double*>p, <const double*>g, n, lr, grad_sign, weight_decay)


def momentum(param, grad, velocity, double lr, double grad_sign, double weight_decay,
             double momentum, double one_minus_dampening, bint nesterov):
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* v = _data(velocity)
    cdef Py_ssize_t n = _size(param)
    if _is_float32(param):
        with nogil:
            momentum_kernel[float](<float*>p, <const float*>g, <float*>v, n, lr, grad_sign,
                                   weight_decay, momentum, one_minus_dampening, nesterov)
    else:
        with nogil:
            momentum_kernel[double](<double*>p, <const double*>g, <double*>v, n, lr, grad_sign,
                                    weight_decay, momentum, one_minus_dampening, nesterov)


def rmsprop(param, grad, square_avg, momentum_buffer, grad_avg, double lr, double grad_sign,
            double weight_decay, double alpha, double one_minus_alpha, double eps,
            double momentum):
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* s = _data(square_avg)
    cdef void* b = _data(momentum_buffer)
    cdef void* a = _data(grad_avg)
    cdef Py_ssize_t n = _size(param)
    if _is_float32(param):
        with nogil:
            rmsprop_kernel[float](<float*>p, <const float*>g, <float*>s, <float*>b, <float*>a, n,
                                  lr, grad_sign, weight_decay, alpha, one_minus_alpha, eps,
                                  momentum)
    else:
        with nogil:
            rmsprop_kernel[double](<double*>p, <const double*>g, <double*>s, <double*>b,
                                   <double*>a, n, lr, grad_sign, weight_decay, alpha,
                                   one_minus_alpha, eps, momentum)


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, double grad_sign,
         double weight_decay, double param_scale, double beta1, double one_minus_beta1,
         double beta2, double one_minus_beta2, double step_size,
         double inv_bias_correction2_sqrt, double eps):
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* m = _data(exp_avg)
    cdef void* v = _data(exp_avg_sq)
    cdef void* vmax = _data(max_exp_avg_sq)
    cdef Py_ssize_t n = _size(param)
    if _is_float32(param):
        with nogil:
            adam_kernel[float](<float*>p, <const float*>g, <float*>m, <float*>v, <float*>vmax, n,
                               grad_sign, weight_decay, param_scale, beta1, one_minus_beta1,
                               beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt,
                               eps)
    else:
        with nogil:
            adam_kernel[double](<double*>p, <const double*>g, <double*>m, <double*>v,
                                <double*>vmax, n, grad_sign, weight_decay, param_scale, beta1,
                                one_minus_beta1, beta2, one_minus_beta2, step_size,
                                inv_bias_correction2_sqrt, eps)


def adagrad(param, grad, state_sum, double clr, double grad_sign, double weight_decay,
            double eps):
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* s = _data(state_sum)
    cdef Py_ssize_t n = _size(param)
    if _is_float32(param):
        with nogil:
            adagrad_kernel[float](<float*>p, <const float*>g, <float*>s, n, clr, grad_sign,
                                  weight_decay, eps)
    else:
        with nogil:
            adagrad_kernel[double](<double*>p, <const double*>g, <double*>s, n, clr, grad_sign,
                                   weight_decay, eps)


def ewa(average, value, double beta, double one_minus_beta):
    cdef void* a = _data(average)
    cdef void* x = _data(value)
    cdef Py_ssize_t n = _size(average)
    if _is_float32(average):
        with nogil:
            ewa_kernel[float](<float*>a, <const float*>x, n, beta, one_minus_beta)
    else:
        with nogil:
            ewa_kernel[double](<double*>a, <const double*>x, n, beta, one_minus_beta)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend: one fused, in-place pass per optimizer step.

The ``cdef ... noexcept nogil`` kernels are declared in ``kernels.pxd`` (read it for their
contract; other Cython code may ``cimport`` them). Each forwards to a loop in the C header
``_simd_body.h`` (the one place the formulas are written), compiled for several SIMD targets
(SSE2, AVX2+FMA, AVX-512) and picked at import by ``_simd_kernels.h`` for this CPU, so a
portable build still runs the widest vectors the CPU has (:func:`simd_target` says which).

The ``def`` functions at the bottom are the Python layer's entry points. They do **not**
validate: :mod:`fastoptim.functional` checks every array and hyperparameter first and passes
the per-call coefficients. Arrays may have any shape; they must be contiguous in one common
order, which the validation layer guarantees. The ``<kernel>_multi`` functions
(``_multi_tensor.pxi``, included at the end) step a whole list of arrays in one call and one
OpenMP parallel region.
"""
cimport numpy as cnp

cnp.import_array()

cdef extern from "_simd_kernels.h" nogil:
    # The loops themselves, compiled once per SIMD target and picked at import (see the
    # header). The formulas live only in _simd_body.h.
    int fo_simd_levels()
    int fo_simd_supported(int level)
    int fo_simd_best()
    int fo_simd_select(int level)
    int fo_simd_level()
    const char* fo_simd_name(int level)
    void fo_sgd_f32(float*, const float*, Py_ssize_t, float, float, float)
    void fo_sgd_f64(double*, const double*, Py_ssize_t, double, double, double)
    void fo_momentum_f32(float*, const float*, float*, Py_ssize_t, float, float, float, float,
                         float, int)
    void fo_momentum_f64(double*, const double*, double*, Py_ssize_t, double, double, double,
                         double, double, int)
    void fo_rmsprop_f32(float*, const float*, float*, float*, float*, Py_ssize_t, float, float,
                        float, float, float, float, float)
    void fo_rmsprop_f64(double*, const double*, double*, double*, double*, Py_ssize_t, double,
                        double, double, double, double, double, double)
    void fo_adam_f32(float*, const float*, float*, float*, float*, Py_ssize_t, float, float,
                     float, float, float, float, float, float, float, float)
    void fo_adam_f64(double*, const double*, double*, double*, double*, Py_ssize_t, double,
                     double, double, double, double, double, double, double, double, double)
    void fo_adagrad_f32(float*, const float*, float*, Py_ssize_t, float, float, float, float)
    void fo_adagrad_f64(double*, const double*, double*, Py_ssize_t, double, double, double,
                        double)
    void fo_ewa_f32(float*, const float*, Py_ssize_t, float, float)
    void fo_ewa_f64(double*, const double*, Py_ssize_t, double, double)

fo_simd_select(fo_simd_best())


def simd_target():
    """The SIMD variant the kernels run: ``"avx512"``, ``"avx2"`` or ``"sse2"`` on x86
    (``"generic"`` elsewhere), chosen at import as the best this CPU supports."""
    return fo_simd_name(fo_simd_level()).decode()


def simd_targets():
    """Every SIMD variant compiled into this build that this CPU can run, best last."""
    return [fo_simd_name(level).decode() for level in range(fo_simd_levels())
            if fo_simd_supported(level)]


def _select_simd_target(str name):
    """Make ``name`` (one of :func:`simd_targets`) the active variant; for tests and
    benchmarks. Returns the previously active name."""
    previous = simd_target()
    for level in range(fo_simd_levels()):
        if fo_simd_name(level).decode() == name and fo_simd_select(level) == level:
            return previous
    raise ValueError(f"SIMD target {name!r} is not available here; choose from {simd_targets()}")


# The cdef kernels of kernels.pxd: each forwards to the active SIMD variant.

cdef void sgd_kernel(floating* param, const floating* grad, Py_ssize_t n, floating lr,
                     floating grad_sign, floating weight_decay) noexcept nogil:
    if floating is float:
        fo_sgd_f32(param, grad, n, lr, grad_sign, weight_decay)
    else:
        fo_sgd_f64(param, grad, n, lr, grad_sign, weight_decay)


cdef void momentum_kernel(floating* param, const floating* grad, floating* velocity,
                          Py_ssize_t n, floating lr, floating grad_sign, floating weight_decay,
                          floating momentum, floating one_minus_dampening,
                          bint nesterov) noexcept nogil:
    if floating is float:
        fo_momentum_f32(param, grad, velocity, n, lr, grad_sign, weight_decay, momentum,
                        one_minus_dampening, nesterov)
    else:
        fo_momentum_f64(param, grad, velocity, n, lr, grad_sign, weight_decay, momentum,
                        one_minus_dampening, nesterov)


cdef void rmsprop_kernel(floating* param, const floating* grad, floating* square_avg,
                         floating* momentum_buffer, floating* grad_avg, Py_ssize_t n,
                         floating lr, floating grad_sign, floating weight_decay, floating alpha,
                         floating one_minus_alpha, floating eps,
                         floating momentum) noexcept nogil:
    if floating is float:
        fo_rmsprop_f32(param, grad, square_avg, momentum_buffer, grad_avg, n, lr, grad_sign,
                       weight_decay, alpha, one_minus_alpha, eps, momentum)
    else:
        fo_rmsprop_f64(param, grad, square_avg, momentum_buffer, grad_avg, n, lr, grad_sign,
                       weight_decay, alpha, one_minus_alpha, eps, momentum)


cdef void adam_kernel(floating* param, const floating* grad, floating* exp_avg,
                      floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t n,
                      floating grad_sign, floating weight_decay, floating param_scale,
                      floating beta1, floating one_minus_beta1, floating beta2,
                      floating one_minus_beta2, floating step_size,
                      floating inv_bias_correction2_sqrt, floating eps) noexcept nogil:
    if floating is float:
        fo_adam_f32(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                    weight_decay, param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                    step_size, inv_bias_correction2_sqrt, eps)
    else:
        fo_adam_f64(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                    weight_decay, param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                    step_size, inv_bias_correction2_sqrt, eps)


cdef void adagrad_kernel(floating* param, const floating* grad, floating* state_sum,
                         Py_ssize_t n, floating clr, floating grad_sign, floating weight_decay,
                         floating eps) noexcept nogil:
    if floating is float:
        fo_adagrad_f32(param, grad, state_sum, n, clr, grad_sign, weight_decay, eps)
    else:
        fo_adagrad_f64(param, grad, state_sum, n, clr, grad_sign, weight_decay, eps)


cdef void ewa_kernel(floating* average, const floating* value, Py_ssize_t n, floating beta,
                     floating one_minus_beta) noexcept nogil:
    if floating is float:
        fo_ewa_f32(average, value, n, beta, one_minus_beta)
    else:
        fo_ewa_f64(average, value, n, beta, one_minus_beta)


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


include "_multi_tensor.pxi"

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend of LAMB: its C kernel (``csrc/lamb.h``) for one array or a list.

LAMB is not element-wise (each array's update is scaled by its trust ratio
``||param|| / ||r||``), so it is not a kernel of the registry, whose generated glue and
multi-tensor chunking assume element-wise loops. Each array takes two passes over memory
(pass 1: the moments in place and both sums of squares; pass 2: the update, ``r`` recomputed
from the stored moments), over chunks whose boundaries depend on the array's size alone, on
``threads`` OpenMP threads; the sums are added in a fixed order, so the result never depends
on the thread count or the SIMD level (see ``csrc/lamb.h``).

The functions do **not** validate: :func:`fastoptim.optimizers.lamb.lamb_step` and
:class:`fastoptim.LAMB` check every array and hyperparameter first. Arrays may have any shape;
they must be contiguous in one common order.
"""
cimport numpy as cnp
from cython cimport floating
from fastoptim.coefficients cimport LAMBCoefficients, lamb_coefficients

cnp.import_array()

cdef extern from "csrc/lamb.h" nogil:
    double fo_lamb_f32(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                       Py_ssize_t n, float grad_sign, float beta1, float one_minus_beta1,
                       float beta2, float one_minus_beta2, float inv_bias_correction1,
                       float inv_bias_correction2, float eps_root, float eps,
                       float weight_decay, double lr, int threads)
    double fo_lamb_f64(double* param, const double* grad, double* exp_avg,
                       double* exp_avg_sq, Py_ssize_t n, double grad_sign, double beta1,
                       double one_minus_beta1, double beta2, double one_minus_beta2,
                       double inv_bias_correction1, double inv_bias_correction2,
                       double eps_root, double eps, double weight_decay, double lr,
                       int threads)
    int fo_lamb_select(int level)
    int fo_lamb_level()
    int fo_lamb_supported(int level)
    Py_ssize_t fo_lamb_chunk_length(Py_ssize_t n)

FIELDS = ("grad_sign", "beta1", "one_minus_beta1", "beta2", "one_minus_beta2",
          "inv_bias_correction1", "inv_bias_correction2", "eps_root", "eps", "weight_decay",
          "lr")
_LEVELS = ("sse2", "avx2")


def coefficients(long long step, double lr, double beta1, double beta2, double eps,
                 double eps_root, double weight_decay, bint maximize):
    """The per-call coefficients (``coefficients.pxd``'s ``lamb_coefficients``): a tuple of
    floats in the order of :data:`FIELDS`, the C kernel's scalar arguments."""
    cdef LAMBCoefficients c = lamb_coefficients(step, lr, beta1, beta2, eps, eps_root,
                                                weight_decay, maximize)
    return (c.grad_sign, c.beta1, c.one_minus_beta1, c.beta2, c.one_minus_beta2,
            c.inv_bias_correction1, c.inv_bias_correction2, c.eps_root, c.eps,
            c.weight_decay, c.lr)


cdef LAMBCoefficients _struct(tuple values) except *:
    cdef LAMBCoefficients c
    (c.grad_sign, c.beta1, c.one_minus_beta1, c.beta2, c.one_minus_beta2,
     c.inv_bias_correction1, c.inv_bias_correction2, c.eps_root, c.eps, c.weight_decay,
     c.lr) = values
    return c


cdef double lamb_kernel(floating* param, const floating* grad, floating* exp_avg,
                       floating* exp_avg_sq, Py_ssize_t n, double grad_sign, double beta1,
                       double one_minus_beta1, double beta2, double one_minus_beta2,
                       double inv_bias_correction1, double inv_bias_correction2,
                       double eps_root, double eps, double weight_decay, double lr,
                       int threads) noexcept nogil:
    if floating is float:
        return fo_lamb_f32(param, grad, exp_avg, exp_avg_sq, n, <float>grad_sign,
                           <float>beta1, <float>one_minus_beta1, <float>beta2,
                           <float>one_minus_beta2, <float>inv_bias_correction1,
                           <float>inv_bias_correction2, <float>eps_root, <float>eps,
                           <float>weight_decay, lr, threads)
    else:
        return fo_lamb_f64(param, grad, exp_avg, exp_avg_sq, n, grad_sign, beta1,
                           one_minus_beta1, beta2, one_minus_beta2, inv_bias_correction1,
                           inv_bias_correction2, eps_root, eps, weight_decay, lr, threads)


cdef double _step(object param, object grad, object exp_avg, object exp_avg_sq,
                  LAMBCoefficients* c, int threads) noexcept:
    cdef cnp.ndarray p = <cnp.ndarray>param
    cdef void* pp = cnp.PyArray_DATA(p)
    cdef const void* gp = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void* mp = cnp.PyArray_DATA(<cnp.ndarray>exp_avg)
    cdef void* vp = cnp.PyArray_DATA(<cnp.ndarray>exp_avg_sq)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p)
    cdef double trust
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32:
        with nogil:
            trust = lamb_kernel(<float*>pp, <const float*>gp, <float*>mp, <float*>vp, n,
                                c.grad_sign, c.beta1, c.one_minus_beta1, c.beta2,
                                c.one_minus_beta2, c.inv_bias_correction1,
                                c.inv_bias_correction2, c.eps_root, c.eps, c.weight_decay,
                                c.lr, threads)
    else:
        with nogil:
            trust = lamb_kernel(<double*>pp, <const double*>gp, <double*>mp, <double*>vp, n,
                                c.grad_sign, c.beta1, c.one_minus_beta1, c.beta2,
                                c.one_minus_beta2, c.inv_bias_correction1,
                                c.inv_bias_correction2, c.eps_root, c.eps, c.weight_decay,
                                c.lr, threads)
    return trust


def lamb(param, grad, exp_avg, exp_avg_sq, tuple coefficients, int threads=1):
    """One LAMB step of one array, in place, on ``threads`` threads; returns the trust ratio
    it applied. ``coefficients``: :func:`coefficients`."""
    cdef LAMBCoefficients c = _struct(coefficients)
    return _step(param, grad, exp_avg, exp_avg_sq, &c, threads)


def lamb_multi(list params, list grads, list exp_avgs, list exp_avg_sqs, tuple coefficients,
               int threads=1):
    """:func:`lamb` for every array of the lists (each with its own trust ratio), in list
    order, in one call."""
    cdef LAMBCoefficients c = _struct(coefficients)
    cdef Py_ssize_t i
    for i in range(len(params)):
        _step(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], &c, threads)


def chunk_length(Py_ssize_t n):
    """Elements per chunk of an array of ``n`` (a function of ``n`` alone)."""
    return fo_lamb_chunk_length(n)


cdef inline int _simd_supported(int level) noexcept nogil:
    return fo_lamb_supported(level)


cdef inline int _simd_level() noexcept nogil:
    return fo_lamb_level()


cdef inline void _simd_select(int level) noexcept nogil:
    fo_lamb_select(level)


include "_simd_switch.pxi"

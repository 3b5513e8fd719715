# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend of Muon's element-wise passes (``csrc/muon.h``): the fused
momentum pass, which also sums the squares of the Newton-Schulz input, and the parameter
update. Muon is not element-wise as a whole (its Newton-Schulz iteration is matrix
products), so it is not a registry kernel; :mod:`fastoptim.optimizers.muon` runs the step.

The Python functions do **not** validate: :func:`fastoptim.muon_step` and
:class:`fastoptim.Muon` check every array and hyperparameter first. The arrays may have any
shape; they must be contiguous, of one dtype, with their elements in one common order.
"""
cimport numpy as cnp
from cython cimport floating

cnp.import_array()

cdef extern from "csrc/muon.h" nogil:
    double fo_muon_momentum_f32(const float* grad, float* buf, float* update, Py_ssize_t n,
                                float w, float one_minus_w, int w_small, int nesterov,
                                float mu, float one_minus_mu, int mu_small)
    double fo_muon_momentum_f64(const double* grad, double* buf, double* update,
                                Py_ssize_t n, double w, double one_minus_w, int w_small,
                                int nesterov, double mu, double one_minus_mu, int mu_small)
    void fo_muon_apply_f32(float* param, const float* update, Py_ssize_t n,
                           float param_scale, float neg_lr)
    void fo_muon_apply_f64(double* param, const double* update, Py_ssize_t n,
                           double param_scale, double neg_lr)
    Py_ssize_t fo_muon_chunk_length(Py_ssize_t n)


cdef double muon_momentum_kernel(const floating* grad, floating* momentum_buffer,
                                 floating* update, Py_ssize_t n, floating w,
                                 floating one_minus_w, bint w_small, bint nesterov,
                                 floating mu, floating one_minus_mu,
                                 bint mu_small) noexcept nogil:
    if floating is float:
        return fo_muon_momentum_f32(grad, momentum_buffer, update, n, w, one_minus_w,
                                    w_small, nesterov, mu, one_minus_mu, mu_small)
    else:
        return fo_muon_momentum_f64(grad, momentum_buffer, update, n, w, one_minus_w,
                                    w_small, nesterov, mu, one_minus_mu, mu_small)


cdef void muon_apply_kernel(floating* param, const floating* update, Py_ssize_t n,
                            floating param_scale, floating neg_lr) noexcept nogil:
    if floating is float:
        fo_muon_apply_f32(param, update, n, param_scale, neg_lr)
    else:
        fo_muon_apply_f64(param, update, n, param_scale, neg_lr)


def momentum(grad, momentum_buffer, update, double w, double one_minus_w, bint w_small,
             bint nesterov, double mu, double one_minus_mu, bint mu_small):
    """:c:func:`muon_momentum_kernel` on three arrays of one dtype (not checked); returns
    ``sum(update**2)``."""
    cdef cnp.ndarray g = <cnp.ndarray>grad
    cdef const void* gp = cnp.PyArray_DATA(g)
    cdef void* bp = cnp.PyArray_DATA(<cnp.ndarray>momentum_buffer)
    cdef void* up = cnp.PyArray_DATA(<cnp.ndarray>update)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(g)
    cdef double total
    if cnp.PyArray_TYPE(g) == cnp.NPY_FLOAT32:
        with nogil:
            total = muon_momentum_kernel(<const float*>gp, <float*>bp, <float*>up, n,
                                         <float>w, <float>one_minus_w, w_small, nesterov,
                                         <float>mu, <float>one_minus_mu, mu_small)
    else:
        with nogil:
            total = muon_momentum_kernel(<const double*>gp, <double*>bp, <double*>up, n, w,
                                         one_minus_w, w_small, nesterov, mu, one_minus_mu,
                                         mu_small)
    return total


def apply(param, update, double param_scale, double neg_lr):
    """:c:func:`muon_apply_kernel` on two arrays of one dtype (not checked)."""
    cdef cnp.ndarray p = <cnp.ndarray>param
    cdef void* pp = cnp.PyArray_DATA(p)
    cdef const void* up = cnp.PyArray_DATA(<cnp.ndarray>update)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p)
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32:
        with nogil:
            muon_apply_kernel(<float*>pp, <const float*>up, n, <float>param_scale,
                              <float>neg_lr)
    else:
        with nogil:
            muon_apply_kernel(<double*>pp, <const double*>up, n, param_scale, neg_lr)


def chunk_length(Py_ssize_t n):
    """Elements per chunk of the momentum pass's sum over ``n`` (a function of ``n``)."""
    return fo_muon_chunk_length(n)

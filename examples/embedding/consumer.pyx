# cython: language_level=3, boundscheck=False, wraparound=False
"""A downstream library's Adam step in Cython, calling fastoptim's kernel with no Python
overhead: coefficients and update both run inside one ``nogil`` block."""
from cython cimport floating
from fastoptim.coefficients cimport AdamCoefficients, adam_coefficients
from fastoptim.kernels cimport adam_kernel


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, long long step, double lr=1e-3, double beta1=0.9,
              double beta2=0.999, double eps=1e-8, double weight_decay=0.0):
    """One Adam step on 1-D contiguous arrays of one dtype, in place (``step`` >= 1)."""
    cdef Py_ssize_t n = param.shape[0]
    if grad.shape[0] != n or exp_avg.shape[0] != n or exp_avg_sq.shape[0] != n:
        raise ValueError("adam_step: arrays must all have the same length")
    if n == 0:
        return
    cdef AdamCoefficients c
    with nogil:
        c = adam_coefficients(step, lr, beta1, beta2, eps, weight_decay,
                              False, False)  # decoupled_weight_decay, maximize
        adam_kernel(&param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0],
                    NULL,  # max_exp_avg_sq: plain Adam, no AMSGrad
                    n, c.grad_sign, c.weight_decay, c.param_scale, c.beta1,
                    c.one_minus_beta1, c.beta2, c.one_minus_beta2, c.step_size,
                    c.inv_bias_correction2_sqrt, c.eps)

# cython: language_level=3
"""LAMB's kernel (``csrc/lamb.h``), for other Cython code to ``cimport``::

    from fastoptim._lamb cimport lamb_kernel
    from fastoptim.coefficients cimport lamb_coefficients    # the per-call scalars

The contract of :mod:`fastoptim.kernels` holds (``n >= 0``, contiguous aligned buffers in
one order, no aliasing, ``noexcept nogil``, nothing checked). Unlike the element-wise
kernels, one call is one whole array (its trust ratio is a norm of the whole array): two
passes, on ``threads`` OpenMP threads over chunks whose boundaries depend on ``n`` alone,
the sums added in a fixed order, so the result never depends on ``threads``.
"""
from cython cimport floating


# One LAMB step of one array, in place; returns the trust ratio it applied. The scalars
# are LAMBCoefficients' fields (coefficients.pxd), in order, rounded to the element type
# at the call (lr stays double).
cdef double lamb_kernel(
    floating* param,                # IN/OUT
    const floating* grad,           # IN
    floating* exp_avg,              # IN/OUT
    floating* exp_avg_sq,           # IN/OUT
    Py_ssize_t n,
    double grad_sign,               # IN  -1 to maximize, else +1
    double beta1,                   # IN
    double one_minus_beta1,         # IN  1 - beta1
    double beta2,                   # IN
    double one_minus_beta2,         # IN  1 - beta2
    double inv_bias_correction1,    # IN  1 / (1 - beta1**t)
    double inv_bias_correction2,    # IN  1 / (1 - beta2**t)
    double eps_root,                # IN
    double eps,                     # IN
    double weight_decay,            # IN
    double lr,                      # IN
    int threads,                    # IN  OpenMP threads (1: no parallel region)
) noexcept nogil

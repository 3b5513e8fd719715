# The public compiled kernel of Adafactor (torch 2.13's), for other libraries to cimport:
#     from fastoptim._adafactor cimport adafactor_kernel, adafactor_vector_kernel
# Implemented in _adafactor.pyx over csrc/adafactor.h; see that header for the passes, the
# fixed-order sums and the workspace.
from cython cimport floating

ctypedef struct AdafactorCoefficients:
    double grad_sign    # -1 when maximize, else 1
    double w            # t**beta2_decay: the lerp weight of the second moment (1 - beta2_t)
    double eps1         # eps[0] (the dtype's eps when None): floor of the row-factor mean
    double eps1_sq      # eps1*eps1: floor of the variance estimate
    double eps2         # eps[1]: floor of RMS(param)
    double rho          # min(lr, 1/sqrt(t)): the relative step size
    double decay        # 1 - lr*weight_decay
    int use_wd          # weight_decay != 0
    double d            # the clipping threshold

cdef void adafactor_kernel(
    floating* param,                # IN/OUT the matrices, C order, batches x rows x cols
    const floating* grad,           # IN     their gradient, same layout
    floating* row_var,              # IN/OUT batches x rows row factors
    floating* col_var,              # IN/OUT batches x cols column factors
    double* work,                   # OUT    fo_af_workspace(batches, rows, cols) doubles
    Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols,
    bint norm_by_cols,              # IN     normalise by the column factors' mean (transposed)
    const AdafactorCoefficients* c, # IN
    int threads,                    # IN     OpenMP threads (the result does not depend on it)
) noexcept nogil

cdef void adafactor_vector_kernel(
    floating* param,                # IN/OUT n elements
    const floating* grad,           # IN
    floating* variance,             # IN/OUT the unfactored second moment
    Py_ssize_t n,
    const AdafactorCoefficients* c, # IN
    int threads,                    # IN
) noexcept nogil

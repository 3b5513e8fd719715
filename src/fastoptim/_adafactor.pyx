# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend of Adafactor: its C kernel (``csrc/adafactor.h``), one array or a
list.

Adafactor is not element-wise (factored second moments, an update scaled by the RMS of the
parameter and clipped by the RMS of the whole update), so it is not a kernel of the
registry. A factored array (>= 2-D) takes three passes over its gradient (row and column
sums of g^2; the sum of u^2; the update), an unfactored one (1-D, 0-D) two; the sums are
taken in a fixed order over blocks whose boundaries depend on the shape alone, so the result
never depends on the thread count or the SIMD level.

The functions do **not** validate: :func:`fastoptim.optimizers.adafactor.adafactor_step` and
:class:`fastoptim.Adafactor` check every array and hyperparameter first. A factored array
must be C-contiguous, or F-contiguous and 2-D (then its memory rows are torch's columns).
"""
cimport numpy as cnp
from libc.math cimport pow, sqrt

from fastoptim.coefficients cimport libm_pow     # torch's 1 / t ** 0.5, bit for bit

cnp.import_array()

cdef extern from "csrc/adafactor.h" nogil:
    void fo_adafactor_f32(float* param, const float* grad, float* rvar, float* cvar,
                          double* work, Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols,
                          int norm_by_cols, float grad_sign, float w, float eps1,
                          float eps1_sq, double eps2, double rho, float decay, int use_wd,
                          double d, int threads)
    void fo_adafactor_f64(double* param, const double* grad, double* rvar, double* cvar,
                          double* work, Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols,
                          int norm_by_cols, double grad_sign, double w, double eps1,
                          double eps1_sq, double eps2, double rho, double decay, int use_wd,
                          double d, int threads)
    void fo_adafactor_vec_f32(float* param, const float* grad, float* var, Py_ssize_t n,
                              float grad_sign, float w, float eps1_sq, double eps2,
                              double rho, float decay, int use_wd, double d, int threads)
    void fo_adafactor_vec_f64(double* param, const double* grad, double* var, Py_ssize_t n,
                              double grad_sign, double w, double eps1_sq, double eps2,
                              double rho, double decay, int use_wd, double d, int threads)
    Py_ssize_t fo_af_workspace(Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols)
    Py_ssize_t fo_af_blocks(Py_ssize_t rows, Py_ssize_t cols)
    Py_ssize_t fo_af_block_rows(Py_ssize_t rows, Py_ssize_t cols)
    Py_ssize_t fo_af_chunk_length(Py_ssize_t n)
    int fo_af_select(int level)
    int fo_af_level()
    int fo_af_supported(int level)

# a step whose workspace fits in this many doubles uses one on the C stack
DEF SMALL_WORK = 512

FIELDS = ("grad_sign", "w", "eps1", "eps1_sq", "eps2", "rho", "decay", "use_wd", "d")
_LEVELS = ("sse2", "avx2")


cdef void adafactor_kernel(floating* param, const floating* grad, floating* row_var,
                           floating* col_var, double* work, Py_ssize_t batches,
                           Py_ssize_t rows, Py_ssize_t cols, bint norm_by_cols,
                           const AdafactorCoefficients* c, int threads) noexcept nogil:
    if floating is float:
        fo_adafactor_f32(param, grad, row_var, col_var, work, batches, rows, cols,
                         norm_by_cols, <float>c.grad_sign, <float>c.w, <float>c.eps1,
                         <float>c.eps1_sq, c.eps2, c.rho, <float>c.decay, c.use_wd, c.d,
                         threads)
    else:
        fo_adafactor_f64(param, grad, row_var, col_var, work, batches, rows, cols,
                         norm_by_cols, c.grad_sign, c.w, c.eps1, c.eps1_sq, c.eps2, c.rho,
                         c.decay, c.use_wd, c.d, threads)


cdef void adafactor_vector_kernel(floating* param, const floating* grad, floating* variance,
                                  Py_ssize_t n, const AdafactorCoefficients* c,
                                  int threads) noexcept nogil:
    if floating is float:
        fo_adafactor_vec_f32(param, grad, variance, n, <float>c.grad_sign, <float>c.w,
                             <float>c.eps1_sq, c.eps2, c.rho, <float>c.decay, c.use_wd, c.d,
                             threads)
    else:
        fo_adafactor_vec_f64(param, grad, variance, n, c.grad_sign, c.w, c.eps1_sq, c.eps2,
                             c.rho, c.decay, c.use_wd, c.d, threads)


def coefficients(long long step, double lr, double beta2_decay, double eps1, double eps2,
                 double d, double weight_decay, bint maximize):
    """The per-call coefficients, a tuple in the order of :data:`FIELDS` (``eps1`` already
    resolved: the dtype's eps when the user gave ``None``). As torch: ``w = t**beta2_decay``
    (torch's ``one_minus_beta2_t``), ``rho = min(lr, 1/sqrt(t))``."""
    cdef double t = <double>step
    return (-1.0 if maximize else 1.0, pow(t, beta2_decay), eps1, eps1 * eps1, eps2,
            min(lr, 1.0 / libm_pow(t, 0.5)), 1.0 - lr * weight_decay, 1 if weight_decay != 0 else 0,
            d)


cdef AdafactorCoefficients _struct(tuple values) except *:
    cdef AdafactorCoefficients c
    (c.grad_sign, c.w, c.eps1, c.eps1_sq, c.eps2, c.rho, c.decay, c.use_wd, c.d) = values
    return c


def geometry(tuple shape, bint fortran):
    """``(batches, rows, cols, transposed)`` of a factored array in memory order: C order,
    the last two dimensions; a 2-D F-ordered array is its transpose (``transposed``)."""
    cdef Py_ssize_t batches = 1, k
    if fortran:
        return 1, shape[1], shape[0], True
    for k in range(len(shape) - 2):
        batches *= shape[k]
    return batches, shape[len(shape) - 2], shape[len(shape) - 1], False


def workspace_size(tuple shape, bint fortran=False):
    """Doubles of workspace a step of an array of this shape needs (0 when unfactored)."""
    if len(shape) < 2:
        return 0
    batches, rows, cols, _ = geometry(shape, fortran)
    return fo_af_workspace(batches, rows, cols)


cdef void _step(object param, object grad, object row_var, object col_var, object variance,
                double* work, Py_ssize_t work_size, AdafactorCoefficients* c,
                int threads) except *:
    cdef cnp.ndarray p = <cnp.ndarray>param
    cdef void* pp = cnp.PyArray_DATA(p)
    cdef const void* gp = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void* rp
    cdef void* cp
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p), batches, rows, cols
    cdef bint f32 = cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32, transposed
    if variance is not None:
        rp = cnp.PyArray_DATA(<cnp.ndarray>variance)
        with nogil:
            if f32:
                adafactor_vector_kernel(<float*>pp, <const float*>gp, <float*>rp, n, c,
                                        threads)
            else:
                adafactor_vector_kernel(<double*>pp, <const double*>gp, <double*>rp, n, c,
                                        threads)
        return
    batches, rows, cols, transposed = geometry(
        param.shape, not cnp.PyArray_IS_C_CONTIGUOUS(p))
    if fo_af_workspace(batches, rows, cols) > work_size:
        raise ValueError(f"the workspace holds {work_size} doubles, a step of shape "
                         f"{param.shape} needs {fo_af_workspace(batches, rows, cols)}")
    rp = cnp.PyArray_DATA(<cnp.ndarray>(col_var if transposed else row_var))
    cp = cnp.PyArray_DATA(<cnp.ndarray>(row_var if transposed else col_var))
    with nogil:
        if f32:
            adafactor_kernel(<float*>pp, <const float*>gp, <float*>rp, <float*>cp, work,
                             batches, rows, cols, transposed, c, threads)
        else:
            adafactor_kernel(<double*>pp, <const double*>gp, <double*>rp, <double*>cp, work,
                             batches, rows, cols, transposed, c, threads)


def adafactor(param, grad, row_var, col_var, variance, work, tuple coefficients,
              int threads=1):
    """One Adafactor step of one array, in place, on ``threads`` threads. ``work``: a
    float64 array of at least :func:`workspace_size` doubles, or ``None`` when that is at
    most :data:`SMALL_WORK_SIZE` (a buffer on the C stack is used); ``coefficients``:
    :func:`coefficients`."""
    cdef AdafactorCoefficients c = _struct(coefficients)
    cdef double local[SMALL_WORK]
    cdef double[::1] wv
    if work is None:
        _step(param, grad, row_var, col_var, variance, local, SMALL_WORK, &c, threads)
    else:
        wv = work
        _step(param, grad, row_var, col_var, variance, &wv[0] if wv.shape[0] else NULL,
              wv.shape[0], &c, threads)


def adafactor_multi(list params, list grads, list row_vars, list col_vars, list variances,
                    double[::1] work, list coefficients, int threads=1):
    """:func:`adafactor` for every array of the lists in list order, in one call; one
    coefficient tuple per array (eps1 follows each array's dtype); one workspace of the
    largest size."""
    cdef AdafactorCoefficients c
    cdef Py_ssize_t i
    cdef double* wp = &work[0] if work.shape[0] else NULL
    for i in range(len(params)):
        c = _struct(coefficients[i])
        _step(params[i], grads[i], row_vars[i], col_vars[i], variances[i], wp, work.shape[0],
              &c, threads)


def blocks(Py_ssize_t rows, Py_ssize_t cols):
    """``(row blocks, rows per block)`` of a rows x cols matrix (a function of the shape)."""
    return fo_af_blocks(rows, cols), fo_af_block_rows(rows, cols)


def chunk_length(Py_ssize_t n):
    """Elements per chunk of an unfactored array of ``n``."""
    return fo_af_chunk_length(n)


cdef inline int _simd_supported(int level) noexcept nogil:
    return fo_af_supported(level)


cdef inline int _simd_level() noexcept nogil:
    return fo_af_level()


cdef inline void _simd_select(int level) noexcept nogil:
    fo_af_select(level)


include "_simd_switch.pxi"


def check_apart(str f, tuple names, tuple arrays):
    """Raise ``ValueError`` naming the first two of ``arrays`` (a handful, contiguous;
    ``None`` skipped) that overlap in memory: :func:`fastoptim._params.check_disjoint` for a
    step's few arrays without building their ``__array_interface__``."""
    cdef Py_ssize_t i, j, k = len(arrays)
    cdef char* lo_i
    cdef char* lo_j
    cdef Py_ssize_t n_i, n_j
    for i in range(k):
        if arrays[i] is None:
            continue
        lo_i = <char*>cnp.PyArray_DATA(<cnp.ndarray>arrays[i])
        n_i = cnp.PyArray_NBYTES(<cnp.ndarray>arrays[i])
        for j in range(i + 1, k):
            if arrays[j] is None:
                continue
            lo_j = <char*>cnp.PyArray_DATA(<cnp.ndarray>arrays[j])
            n_j = cnp.PyArray_NBYTES(<cnp.ndarray>arrays[j])
            if n_i and n_j and lo_i < lo_j + n_j and lo_j < lo_i + n_i:
                raise ValueError(f"{f}: {names[i]} and {names[j]} share memory; every array "
                                 f"must be a separate buffer")


SMALL_WORK_SIZE = SMALL_WORK
_DIMS = ("two or more dimensions", "two or more dimensions", "fewer than 2 dimensions")


def check_states(str f, cnp.ndarray param, tuple labels, tuple states):
    """The state arrays ``(row_var, col_var, variance)`` of ``param``, checked: the ones
    its dimension uses, each a writeable array of param's dtype and torch's shape,
    C-contiguous (``variance``: either order); the unused ones ``None``. Returns them as
    plain ``ndarray``\\ s; raises naming the bad one."""
    cdef Py_ssize_t k
    cdef int nd = cnp.PyArray_NDIM(param)
    shape = (<object>param).shape
    dtype = (<object>param).dtype
    if nd >= 2:
        shapes = (shape[:nd - 1] + (1,), shape[:nd - 2] + (1, shape[nd - 1]), None)
    else:
        shapes = (None, None, shape)
    out = [None, None, None]
    for k in range(3):
        a, label, want = states[k], labels[k], shapes[k]
        if want is None:
            if a is not None:
                raise ValueError(f"{f}: {label} is only used when param has {_DIMS[k]}; "
                                 f"pass {label}=None")
            continue
        if not isinstance(a, cnp.ndarray):
            raise TypeError(f"{f}: {label} must be a numpy.ndarray of shape {want}, got "
                            f"{type(a).__name__}")
        if a.dtype != dtype or a.shape != want:
            raise ValueError(f"{f}: {label} must be a {dtype} array of shape {want}, "
                             f"got {a.dtype} {a.shape}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a)
                or (k == 2 and cnp.PyArray_IS_F_CONTIGUOUS(a))):
            raise ValueError(f"{f}: {label} must be contiguous")
        if not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(f"{f}: {label} must be writeable (it is updated in place)")
        out[k] = a if type(a) is cnp.ndarray else a.view(cnp.ndarray)
    return out

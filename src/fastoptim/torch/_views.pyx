# cython: language_level=3
"""NumPy views of the gradients of torch parameters, for :mod:`fastoptim.torch`'s step.

``tensor.numpy()`` costs about 2 µs a call (argument parsing, checks, a new array object),
which on a model of many small tensors is most of a fused step. A gradient that has its
parameter's dtype, shape and strides, on the CPU, dense, with no lazy negation, is viewed
here with the parameter's cached array metadata and the gradient's data pointer in a few
attribute reads; the view keeps the gradient tensor alive (its base). Anything else is
left to the caller's checked slow path.

Touches no tensor data and imports nothing from torch: the tensors are read through their
Python attributes only.
"""
cimport numpy as cnp

cnp.import_array()


def grad_views(list tensors, list addresses, list params, list shapes, list strides,
               list dtypes, object strided, list out, Py_ssize_t start=0):
    """Fill ``out[i]`` with a NumPy view of ``tensors[i].grad`` (``None`` where there is
    none) for every parameter ``i >= start``.

    ``addresses[i]`` is the data pointer parameter ``i`` had when the optimizer was built,
    ``params[i]`` its NumPy view, ``shapes[i]``/``strides[i]``/``dtypes[i]`` its torch
    ``shape``, ``stride()`` and ``dtype``; ``strided`` is ``torch.strided``.

    Returns ``(0, -1)`` when every gradient was viewed; ``(1, i)`` when parameter ``i`` no
    longer uses the memory at ``addresses[i]``; ``(2, i)`` when the gradient of parameter
    ``i`` does not match it (the caller checks that one and names the problem). Entries of
    ``out`` before ``i`` are filled in the last two cases."""
    cdef Py_ssize_t i, n = len(tensors)
    if not (len(addresses) == len(params) == len(shapes) == len(strides) == len(dtypes)
            == len(out) == n) or start < 0:
        raise ValueError("grad_views: the lists must have one entry per tensor")
    cdef cnp.ndarray p, view
    cdef size_t address
    for i in range(start, n):
        t = tensors[i]
        if <size_t>t.data_ptr() != <size_t>addresses[i]:
            return 1, i
        g = t.grad
        if g is None:
            out[i] = None
            continue
        if (g.layout is not strided or not g.is_cpu or g.dtype is not dtypes[i]
                or g.shape != shapes[i] or g.stride() != strides[i] or g.is_neg()):
            return 2, i
        address = <size_t>g.data_ptr()
        p = <cnp.ndarray>params[i]
        view = cnp.PyArray_New(cnp.ndarray, cnp.PyArray_NDIM(p), cnp.PyArray_DIMS(p),
                               cnp.PyArray_TYPE(p), cnp.PyArray_STRIDES(p), <void*>address,
                               0, cnp.NPY_ARRAY_WRITEABLE, None)
        cnp.set_array_base(view, g)
        out[i] = view
    return 0, -1

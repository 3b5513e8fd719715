# cython: language_level=3
"""NumPy views of the gradients of torch parameters, for :mod:`fastoptim.torch`'s step.

``tensor.numpy()`` costs about 2 µs a call (argument parsing, checks, a new array object),
which on a model of many small tensors is most of a fused step. Here a gradient that has
its parameter's dtype, shape and strides, on the CPU, dense, with no lazy negation, is
viewed with the parameter's cached array metadata and the gradient's data pointer, in a few
attribute reads. A gradient tensor that is the same object as at the last step (gradients
kept between steps: ``zero_grad(set_to_none=False)``, accumulation, gradients assigned in
place) and still at the same address reuses last step's view.

Memory safety: a view is made only after the checks above; a cached view is used only
while its tensor is alive (a weak reference to it is ``tensor.grad`` now) and its data
pointer is unchanged, and a tensor's storage never shrinks, so the view never reaches
past it. The views do not own or reference their tensor (a cache must not keep old
gradients alive); the caller holds the tensors (``held``) for as long as it uses the views.

Touches no tensor data and imports nothing from torch: the tensors are read through their
Python attributes only.
"""
cimport numpy as cnp
from weakref import ref as _weakref

cnp.import_array()


cdef class GradViews:
    """Per-parameter metadata and last step's views; :meth:`fill` makes this step's."""

    cdef list tensors, addresses, params, shapes, strides, dtypes
    cdef list refs, views, pointers
    cdef object strided

    def __init__(self, object strided):
        self.strided = strided
        self.tensors, self.addresses, self.params = [], [], []
        self.shapes, self.strides, self.dtypes = [], [], []
        self.refs, self.views, self.pointers = [], [], []

    def add(self, t, cnp.ndarray view):
        """Register parameter tensor ``t`` and its NumPy view (its address, shape, strides
        and dtype as they are now)."""
        self.tensors.append(t)
        self.addresses.append(t.data_ptr())
        self.params.append(view)
        self.shapes.append(t.shape)
        self.strides.append(t.stride())
        self.dtypes.append(t.dtype)
        self.refs.append(None)
        self.views.append(None)
        self.pointers.append(0)

    def fill(self, list out, list held, Py_ssize_t start=0):
        """Set ``out[i]`` to a view of parameter ``i``'s gradient (``None`` where it has
        none) and ``held[i]`` to the gradient tensor, for ``i >= start``.

        Returns ``(0, -1)`` when every gradient was viewed; ``(1, i)`` when parameter ``i``
        no longer uses the memory it had when added; ``(2, i)`` when the gradient of
        parameter ``i`` does not match it (the caller checks that one and names the
        problem); the entries before ``i`` are filled."""
        cdef Py_ssize_t i, n = len(self.tensors)
        cdef cnp.ndarray p, view
        cdef size_t address
        if len(out) != n or len(held) != n or start < 0:
            raise ValueError("GradViews.fill: out and held need one entry per parameter")
        for i in range(start, n):
            t = self.tensors[i]
            if <size_t>t.data_ptr() != <size_t>self.addresses[i]:
                return 1, i
            g = t.grad
            held[i] = g
            if g is None:
                out[i] = None
                continue
            r = self.refs[i]
            if r is not None and r() is g:
                address = <size_t>g.data_ptr()
                # the same tensor at the same address may have changed its shape or strides
                # in place (t_(), resize_(), unsqueeze_()): the view is reused only if not
                if (address == <size_t>self.pointers[i] and g.shape == self.shapes[i]
                        and g.stride() == self.strides[i]):
                    out[i] = self.views[i]
                    continue
            try:
                if (not g.is_cpu or g.dtype is not self.dtypes[i]
                        or g.stride() != self.strides[i]     # (raises for a sparse tensor)
                        or g.shape != self.shapes[i] or g.is_neg()):
                    return 2, i
            except RuntimeError:
                return 2, i
            address = <size_t>g.data_ptr()
            p = <cnp.ndarray>self.params[i]
            if address == 0 and cnp.PyArray_SIZE(p) > 0:
                return 2, i         # no memory (a freed storage): NumPy would allocate
            view = cnp.PyArray_New(cnp.ndarray, cnp.PyArray_NDIM(p), cnp.PyArray_DIMS(p),
                                   cnp.PyArray_TYPE(p), cnp.PyArray_STRIDES(p),
                                   <void*>address, 0, cnp.NPY_ARRAY_WRITEABLE, None)
            self.refs[i] = _weakref(g)
            self.views[i] = view
            self.pointers[i] = address
            out[i] = view
        return 0, -1

    def forget(self):
        """Drop the cached views (after the gradients may have been changed in ways a
        data pointer does not show)."""
        cdef Py_ssize_t i
        for i in range(len(self.refs)):
            self.refs[i] = None
            self.views[i] = None

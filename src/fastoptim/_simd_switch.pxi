# The SIMD switch of a compiled module that is not the registry's (included by _lamb.pyx,
# _adafactor.pyx and _lowmem.pyx). The including module names its variants in _LEVELS
# (baseline first) and wraps its own C dispatch in three cdef functions:
#   _simd_supported(level), _simd_level(), _simd_select(level)


def simd_targets():
    """The SIMD variants of this module's loops that this CPU can run, best last."""
    return [name for level, name in enumerate(_LEVELS) if _simd_supported(level)]


def simd_target():
    """The active variant (the best of :func:`simd_targets` after import)."""
    return _LEVELS[_simd_level()]


def _select_simd_target(str name):
    """Make ``name`` (one of :func:`simd_targets`) the active variant; for tests and
    benchmarks. Returns the previously active name."""
    previous = simd_target()
    if name not in simd_targets():
        raise ValueError(f"SIMD target {name!r} is not available here; choose from "
                         f"{simd_targets()}")
    _simd_select(_LEVELS.index(name))
    return previous

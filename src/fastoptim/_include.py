"""Where fastoptim's Cython declarations (``.pxd``) live, for downstream builds."""
import os


def get_include() -> str:
    """Directory to put on a Cython consumer's include path.

    It is the folder that *contains* the ``fastoptim`` package, so that
    ``from fastoptim.kernels cimport adam_kernel`` and
    ``from fastoptim.coefficients cimport adam_coefficients`` resolve::

        cythonize("consumer.pyx", include_path=[fastoptim.get_include()])

    Returns
    -------
    str
        An absolute path; ``<path>/fastoptim/kernels.pxd`` exists.
    """
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

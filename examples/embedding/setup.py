"""Build the consumer in place: ``python setup.py build_ext --inplace``."""
import fastoptim
from Cython.Build import cythonize
from setuptools import setup

setup(
    name="fastoptim-consumer",
    ext_modules=cythonize(
        "*.pyx",
        include_path=[fastoptim.get_include()],  # where fastoptim/*.pxd live
        compiler_directives={"language_level": 3},
    ),
)

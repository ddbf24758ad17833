"""Build of the optional C kernels (``netspec.init._kernels``); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and netspec uses its NumPy
transforms, which give the same bytes (slower). The flags keep every floating-point operation as
written: no fused multiply-add contraction, no fast-math, no -march (the C file itself adds AVX2
variants of its loops on x86-64, chosen at run time). The file needs a 128-bit integer type (GCC or
Clang on a 64-bit target); MSVC lacks one, so on Windows with MSVC the build step is skipped and NumPy
runs. A wheel built where the step failed has no kernels: pip caches it, so after installing a
compiler reinstall with ``pip install --no-cache-dir --force-reinstall netspec-nn``.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

GCC_FLAGS = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
MSVC_FLAGS = ["/O2", "/fp:precise"]


class BuildKernels(build_ext):
    """Per-compiler flags (the defaults differ on whether they may fuse a multiply and an add)."""

    def build_extensions(self) -> None:
        flags = MSVC_FLAGS if self.compiler.compiler_type == "msvc" else GCC_FLAGS
        for ext in self.extensions:
            ext.extra_compile_args = [*flags, *ext.extra_compile_args]
        super().build_extensions()


setup(
    ext_modules=[Extension("netspec.init._kernels", ["src/netspec/init/_kernels.c"], optional=True)],
    cmdclass={"build_ext": BuildKernels},
)

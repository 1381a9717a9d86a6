"""Only the C extension lives here; everything else is in pyproject.toml.

The extension is optional: where it cannot be built, Tidings runs the same
checks in Python (slower), and `tidings.records.batch.SPEEDUPS` says which.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tidings._speedups",
            ["src/tidings/_speedups.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)

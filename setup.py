"""Only the compiled part of the build; everything else is in pyproject.toml.

``hub.ingest._fastrows`` (the hub's telemetry rows in one C pass, ``hub/ingest/fastrows.py``) is optional: on a
machine without a C compiler and Python's headers the install goes on and the hub uses the pure-Python path,
which gives the same lines (``./run test`` installs ``gcc`` and ``python3-dev``; ``/healthz`` says which path runs).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("hub.ingest._fastrows", ["hub/ingest/_fastrows.c"], optional=True,
                             extra_compile_args=["-O2"])])

"""svc-avg tests use the MS tests' FITS reader and tool check (the sky test)."""

from tests.mswrite.conftest import read_fits, require_tool  # noqa: F401

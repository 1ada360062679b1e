"""Shared fixtures: unique ring keys per test and a check that no shared memory leaks."""

from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path

import pytest

# Every key this test session makes starts with the same 4 random hex digits, so the leak
# check below looks only at this session's objects (other sessions may run beside it).
# The first digit is never 0, so the normalised key keeps all 8 digits.
SESSION_PREFIX = f"{secrets.choice('123456789abcdef')}{secrets.token_hex(2)[1:]}"
_counter = itertools.count(1)
SHM_DIR = Path("/dev/shm")


def new_key() -> str:
    """A fresh 8-hex-digit ring key unique to this test session."""
    return f"{SESSION_PREFIX}{next(_counter):04x}"


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def key_factory():
    return new_key


def session_shm_objects() -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"*ringpipe_{SESSION_PREFIX}*"))


@pytest.fixture(autouse=True, scope="session")
def no_shared_memory_left_behind():
    yield
    leftover = session_shm_objects()
    for name in leftover:  # clean up so one failure does not poison the machine
        try:
            os.unlink(SHM_DIR / name)
        except OSError:
            pass
    assert not leftover, f"tests left shared memory behind: {leftover}"

"""Services have their own error base: nothing in services/ is a ring-library error."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

import ringbuf.errors
from ringbuf.errors import HeaderError, RingBufError
from services.common.config import ConfigError, ConfigSource, build_config
from services.common.errors import USER_ERRORS, ServiceError
from services.common.processes import daemon_env, tool
from services.mswrite.config import MsWriteScanConfig
from services.mswrite.errors import MsWriteError

ROOT = Path(__file__).resolve().parents[2]
RING_ERRORS = {name for name, value in vars(ringbuf.errors).items()
               if isinstance(value, type) and issubclass(value, Exception)}


def test_config_and_mswrite_errors_are_service_errors_not_ring_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(MsWriteScanConfig, ConfigSource(overrides=(("-o", {
            "MS_OUTPUT_DIR": str(tmp_path / "none"), "MS_ANTENNA_FILE": "x"}),)))
    error = info.value
    assert isinstance(error, ServiceError) and not isinstance(error, RingBufError)
    assert error.problems[0] == f"MS_OUTPUT_DIR {tmp_path / 'none'}: not a directory"
    assert error.problems[1].startswith("MS_ANTENNA_FILE x: ")
    assert issubclass(MsWriteError, ServiceError) and not issubclass(MsWriteError, RingBufError)
    assert USER_ERRORS == (RingBufError, ServiceError)


def test_a_config_file_that_cannot_be_parsed_is_still_a_ring_header_error(tmp_path: Path) -> None:
    # the file codec is the ring library's: its errors stay HeaderError
    bad = tmp_path / "bad.hdr"
    bad.write_text("DATA_KEY a000\nnot-a-line\n")
    with pytest.raises(HeaderError, match=f"{bad}: line 2"):
        ConfigSource.load([str(bad)])


def test_svc_ctl_reports_a_config_error_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([tool("svc-ctl"), str(tmp_path / "none.sock"), "configure_beam",
                             "-o", "NOEQUALS"], capture_output=True, text=True, timeout=60,
                            env=daemon_env())
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "NOEQUALS" in result.stderr
    assert "Traceback" not in result.stderr


def _ring_error_subclasses(top: Path) -> list[str]:
    found = []
    for path in sorted(top.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & RING_ERRORS:
                    found.append(f"{path.relative_to(ROOT)}: {node.name}")
    return found


def test_no_service_error_subclasses_a_ring_error() -> None:
    assert "HeaderError" in RING_ERRORS and "RingBufError" in RING_ERRORS
    assert _ring_error_subclasses(ROOT / "services") == []

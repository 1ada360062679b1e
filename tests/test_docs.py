"""The docs keep up with the code: every command documented with examples, every counter defined."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli_docs():
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    expected = _cli_docs().render()
    assert (ROOT / "docs" / "cli.md").read_text() == expected, (
        "docs/cli.md is stale: run .venv/bin/python scripts/cli_docs.py > docs/cli.md")


def test_every_console_script_is_in_the_reference():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    documented = {name for name, _ in _cli_docs().COMMANDS}
    assert set(scripts) <= documented
    for name, target in _cli_docs().COMMANDS:  # the same module as the console script
        if name in scripts:
            assert target.split(":")[0] == scripts[name].split(":")[0]


def test_every_help_text_has_an_example():
    sections = re.split(r"^#+ `", (ROOT / "docs" / "cli.md").read_text(), flags=re.M)[1:]
    assert len(sections) >= 20
    for section in sections:
        assert "Example" in section, f"no example in the help of {section.splitlines()[0]}"


@pytest.mark.parametrize("module, counters", [
    ("services.ingest.counters", "IngestCounters"),
    ("services.stat.service", "StatCounters"),
    ("services.mswrite.service", "MsWriteCounters"),
    ("services.common.control", "ControlCounters"),
])
def test_every_counter_is_defined_in_monitoring_md(module, counters):
    cls = getattr(importlib.import_module(module), counters)
    text = (ROOT / "docs" / "monitoring.md").read_text()
    missing = [name for name, _, _ in cls.describe() if f"`{name}`" not in text]
    assert not missing, f"docs/monitoring.md does not define {missing}"

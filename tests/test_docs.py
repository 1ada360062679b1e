"""The docs keep up with the code: every command documented with examples, every counter defined."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

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
    ("services.spead_send.counters", "SpeadSendCounters"),
    ("services.stat.counters", "StatCounters"),
    ("services.mswrite.counters", "MsWriteCounters"),
    ("services.common.control", "ControlCounters"),
])
def test_every_counter_is_defined_in_monitoring_md(module, counters):
    cls = getattr(importlib.import_module(module), counters)
    text = (ROOT / "docs" / "monitoring.md").read_text()
    missing = [name for name, _, _ in cls.describe() if f"`{name}`" not in text]
    assert not missing, f"docs/monitoring.md does not define {missing}"


def _all_commands():
    """(name, click command) of every command and ringbuf subcommand."""
    docs = _cli_docs()
    for name, target in docs.COMMANDS:
        command = docs.load(target)
        yield name, command
        for sub_name, sub in getattr(command, "commands", {}).items():
            yield f"{name} {sub_name}", sub


@pytest.mark.parametrize("name", [name for name, _ in _all_commands()])
def test_dash_o_is_set_key_value_and_outputs_are_spelt_out(name):
    command = dict(_all_commands())[name]
    for param in command.params:
        if "-o" in getattr(param, "opts", ()):
            assert param.opts == ["-o", "--set"] and param.metavar == "KEY=VALUE", (
                f"{name}: -o means -o/--set KEY=VALUE on every command, not {param.opts}")
        assert not any(opt in ("--out", "--output-file", "--outfile") for opt in param.opts)


def test_every_configurable_command_takes_dash_o():
    commands = dict(_all_commands())
    for name in ("svc-ingest", "svc-stat", "svc-mswrite", "svc-ctl", "emu-send", "beam-send"):
        assert any(p.opts == ["-o", "--set"] for p in commands[name].params), name
    assert [p.opts for p in commands["stat-plot"].params if "--output" in p.opts] == [["--output"]]


def _make_dry_run(target: str) -> str:
    # run as a top-level make even under `make test` (no inherited flags, no directory lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(["make", "--no-print-directory", "-n", "-B", target], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_readme_commands_build_everything_from_nothing():
    # -B: as on a fresh clone, every prerequisite is rebuilt (venv, pip install, OS tools)
    test, demo = _make_dry_run("test"), _make_dry_run("demo")
    for out in (test, demo):
        assert "-m venv .venv" in out and "pip install --quiet -e '.[test]'" in out
        assert "scripts/install-tools.sh" in out  # the demo images with wsclean when it can
    lines = test.splitlines()
    checks = [".venv/bin/ruff check .", ".venv/bin/mypy ringbuf services",
              ".venv/bin/python -m pytest -q"]
    assert [line for line in lines if line in checks] == checks  # lint, types, then the suite
    assert demo.splitlines()[-1] == ".venv/bin/python -m services.demo"


_TOPS = r"(?:ringbuf|services|tests|configs|systemd|scripts|benchmarks|docs|\.ci)"
_PATH = re.compile(rf"(?<![\w/.-])({_TOPS}/[\w./@-]*)")
_MODULE = re.compile(r"(?<![\w/.-])((?:ringbuf|services)(?:\.[a-z_][a-z0-9_]*)+)(?![\w/-])")
_FILE_SUFFIXES = (".md", ".py", ".txt", ".hdr", ".service", ".sock", ".h5", ".ms", ".dada")


def _doc_references(text: str) -> tuple[list[str], list[str], list[str]]:
    """(repository paths, dotted module names, relative markdown links) mentioned in ``text``."""
    paths, modules, links = [], [], []
    for line in text.splitlines():
        for match in _PATH.finditer(line):
            if line[match.end():match.end() + 1] in ("<", "*", "{"):  # a pattern, not a path
                continue
            paths.append(match.group(1).rstrip(".,:;"))
        modules += [m.group(1) for m in _MODULE.finditer(line)
                    if not m.group(1).endswith(_FILE_SUFFIXES)]
        links += [t for t in re.findall(r"\]\(([^)#\s]+)", line) if "://" not in t]
    return paths, modules, links


def _is_module_or_attribute(dotted: str) -> bool:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):  # the longest prefix that is a module of this tree
        path = ROOT.joinpath(*parts[:end])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            if end == len(parts):
                return True
            module = importlib.import_module(".".join(parts[:end]))
            return end + 1 == len(parts) and hasattr(module, parts[end])
    return False


def test_the_reference_finder_sees_paths_modules_and_links():
    text = ("see `services/common/runner.py`, configs/<name>.hdr, services.common.config and "
            "[the protocol](ringbuf.md); docs/ringbuf.md.")
    assert _doc_references(text) == (["services/common/runner.py", "docs/ringbuf.md"],
                                     ["services.common.config"], ["ringbuf.md"])
    assert _is_module_or_attribute("ringbuf.logs.setup_logging")
    assert not _is_module_or_attribute("services.common.testing")


def test_docs_mention_only_files_that_exist():
    docs = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
    assert len(docs) >= 10
    missing, seen = [], 0
    for doc in docs:
        paths, modules, links = _doc_references(doc.read_text())
        seen += len(paths) + len(modules) + len(links)
        name = doc.relative_to(ROOT)
        missing += [f"{name}: {p}" for p in paths if not (ROOT / p).exists()]
        missing += [f"{name}: {m}" for m in modules if not _is_module_or_attribute(m)]
        missing += [f"{name}: link {t}" for t in links if not (doc.parent / t).exists()]
    assert seen > 50
    assert missing == []

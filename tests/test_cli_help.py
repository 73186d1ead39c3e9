"""The command line answers for itself: top-level and per-command help, --version, a clear error for a wrong command.

Every check runs the real installed program in a subprocess (``python -m stylesynth`` and the ``stylesynth`` console
script), the way a user meets it. Subcommands are discovered from ``stylesynth.cli.COMMANDS``: a command module
that exists must answer ``--help``; one not written yet is simply not offered.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import stylesynth
from stylesynth.cli import COMMANDS

BIN = Path(sys.executable).parent


def existing_commands() -> list[str]:
    """The names in COMMANDS whose module ``stylesynth.commands.<name>`` exists."""
    return [name for name in COMMANDS if importlib.util.find_spec(f"stylesynth.commands.{name}") is not None]


def run(*args: str, entry: str = "module") -> subprocess.CompletedProcess:
    """Run the CLI as ``python -m stylesynth ARGS`` (entry="module") or the console script (entry="script")."""
    command = [sys.executable, "-m", "stylesynth", *args] if entry == "module" else [str(BIN / "stylesynth"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize("entry", ["module", "script"])
def test_top_level_help_lists_every_existing_command(entry):
    result = run("--help", entry=entry)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: stylesynth")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert set(existing_commands()) <= listed, result.stdout
    assert not listed & (set(COMMANDS) - set(existing_commands())), "help offers a command that does not exist"


@pytest.mark.parametrize("name", existing_commands())
def test_each_command_answers_help(name):
    result = run(name, "--help")
    assert result.returncode == 0, f"stylesynth {name} --help failed:\n{result.stderr}"
    assert result.stdout.startswith(f"usage: stylesynth {name}"), result.stdout
    assert result.stderr == "", f"stylesynth {name} --help wrote to stderr:\n{result.stderr}"


def test_help_does_not_import_torch():
    # cli.py promises that --help answers at once: command modules keep torch/numba imports inside func.
    code = ("import sys\nfrom stylesynth.cli import build_parser\nbuild_parser()\n"
            "heavy = sorted(m for m in ('torch', 'numba', 'librosa') if m in sys.modules)\n"
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"building the parser imported {result.stdout.strip()}"


def test_unknown_command_is_refused_clearly():
    result = run("no-such-command")
    assert result.returncode == 2
    assert "invalid choice: 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_help_and_fails():
    result = run()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: stylesynth")


@pytest.mark.parametrize("entry", ["module", "script"])
def test_version(entry):
    result = run("--version", entry=entry)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"stylesynth {stylesynth.__version__}"
    # The package's own version and the installed distribution's (pyproject.toml) must agree.
    assert importlib.metadata.version("stylesynth") == stylesynth.__version__

"""The installed commands: declared in the package metadata, each with --help, one argument style."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "dicebert-train": "dicebert.train:main",
    "dicebert-predict": "dicebert.predict:main",
    "dicebert-export": "dicebert.export:main",
    "dicebert-compare": "dicebert.cli.compare:main",
    "dicebert-posthoc": "dicebert.posthoc:main",
}


def test_pyproject_declares_every_command() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == COMMANDS
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"dicebert-train"}))
def test_each_command_prints_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    module, _, function = COMMANDS[command].partition(":")
    with pytest.raises(SystemExit) as exc:
        getattr(importlib.import_module(module), function)(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: ") and "positional arguments:" in out


@pytest.mark.slow
def test_train_prints_its_help() -> None:
    """Hydra's help, through ``python -m`` as the installed script calls it."""
    done = subprocess.run(
        [sys.executable, "-m", "dicebert.train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "powered by Hydra" in done.stdout and "loss: " in done.stdout  # the config groups are listed


def test_a_user_error_is_one_line_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nowhere")
    for command, args in (
        ("dicebert-export", [missing, str(tmp_path / "out")]),
        ("dicebert-compare", [missing]),
    ):
        module, _, function = COMMANDS[command].partition(":")
        assert getattr(importlib.import_module(module), function)(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err

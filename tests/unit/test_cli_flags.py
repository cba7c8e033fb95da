"""Every flag of every `kfops` sub-command has help text, and a concept has one name.

One name per concept (kfops.cli._flags): ``--model`` is a model's name in the registry and
``--version`` a version or alias wherever they appear; the old spellings still work, hidden,
with a one-line notice.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfops.cli import build_parser
from kfops.cli._flags import MODEL_HELP


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(build_parser()))


def _visible(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        yield action


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "kfops")
def test_every_flag_and_argument_has_help(path: tuple[str, ...]) -> None:
    missing = [
        "/".join(a.option_strings) or a.dest
        for a in _visible(COMMANDS[path])
        if not (a.help or "").strip()
    ]
    assert not missing, f"kfops {' '.join(path)}: no help for {missing}"


def test_the_walk_sees_every_sub_command() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"run", "serve", "monitor", "deploy promote", "deploy apply", "keys sign"} <= names


def _flag(path: tuple[str, ...], option: str) -> argparse.Action | None:
    for action in COMMANDS[path]._actions:
        if option in action.option_strings:
            return action
    return None


@pytest.mark.parametrize(
    "path", [("run",), ("serve",), ("monitor",), ("deploy", "promote"), ("deploy", "apply")]
)
def test_model_names_a_model_everywhere(path: tuple[str, ...]) -> None:
    action = _flag(path, "--model")
    assert action is not None and action.dest == "model"
    assert "model name" in (action.help or ""), action.help
    assert "version" not in (action.help or "").split("(")[0]


@pytest.mark.parametrize("path", [("serve",), ("monitor",)])
def test_version_names_a_version_or_alias(path: tuple[str, ...]) -> None:
    action = _flag(path, "--version")
    assert action is not None and action.dest == "version"
    assert "alias" in (action.help or "")


def test_no_flag_spells_the_model_otherwise() -> None:
    """--name / --model-name for the registry model are gone from every help page."""
    for path, parser in COMMANDS.items():
        for action in _visible(parser):
            if action.option_strings and action.dest in ("model", "registry_model"):
                assert action.option_strings == ["--model"], (path, action.option_strings)


@pytest.mark.parametrize(
    ("argv", "dest", "value", "notice"),
    [
        (
            ["run", "--model-name", "cars"],
            "model",
            "cars",
            "--model-name is deprecated; use --model",
        ),
        (["serve", "--name", "cars"], "model", "cars", "--name is deprecated; use --model"),
        (["deploy", "promote", "--name", "cars", "v2"], "model", "cars", "use --model"),
        (["serve", "--model-name", "ep"], "model_name", "ep", "use --endpoint-name"),
    ],
)
def test_old_spellings_still_work_with_one_notice(
    argv: list[str], dest: str, value: str, notice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("notice: ") and notice in err[0], err


def test_old_spellings_are_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--help"], ["serve", "--help"], ["deploy", "promote", "--help"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        out = capsys.readouterr().out
        assert "--model-name" not in out and "--name " not in out, argv
        assert "--model" in out


def test_model_help_is_shared() -> None:
    assert _flag(("deploy", "rollback"), "--model").help == MODEL_HELP  # type: ignore[union-attr]


def test_serve_capture_help_says_the_default_it_uses() -> None:
    """`kfops serve` captures unless --no-capture; its help must not say 'off if unset'."""
    capture = _flag(("serve",), "--capture")
    assert capture is not None and "<registry>/capture" in (capture.help or "")
    assert "off if unset" not in (capture.help or "")


def test_serve_model_with_a_version_is_read_the_old_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kfops serve --model v1` named the version before; with no model called v1 it still
    serves version v1, with a notice. A real model name is taken as the model."""
    from kfops.cli.serve import _old_model_flag
    from kfops.registry import Registry

    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"model")
    Registry(tmp_path / "reg").register("m", {"model.joblib": artifact}, {})
    old = build_parser().parse_args(["serve", "--registry", str(tmp_path / "reg"), "--model", "v1"])
    _old_model_flag(old)
    assert (old.model, old.version) == (None, "v1")
    assert "use --version v1" in capsys.readouterr().err
    new = build_parser().parse_args(["serve", "--registry", str(tmp_path / "reg"), "--model", "m"])
    _old_model_flag(new)
    assert (new.model, new.version) == ("m", "champion")
    assert capsys.readouterr().err == ""

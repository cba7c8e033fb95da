"""The executor log of a local run: kfp.local's own lines become step events, everything goes
to the log file, nothing reaches the terminal unless echoed.

The task lines are made with kfp's own formatting functions (kfp/local/logging_utils.py) and
logged through its own logger context, as kfp/local/task_dispatcher.py does, so a kfp upgrade
that changes them turns these tests red.
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from kfp.local import logging_utils, status

from kfops.cli.run import StepLines
from kfops.run_log import ExecutorLog, TaskEvent, capture


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _task(name: str, ok: bool, output: list[str], clock: Clock, seconds: float) -> None:
    """What kfp.local writes for one task: its logger lines around the task's printed output."""
    with logging_utils.local_logger_context():
        logging.info(f"Executing task {logging_utils.format_task_name(name)}")
        logging.info("Streamed logs:\n")
        with logging_utils.indented_print():
            for line in output:
                print(line)
        clock.now += seconds
        result = status.Status.SUCCESS if ok else status.Status.FAILURE
        logging.info(
            f"Task {logging_utils.format_task_name(name)} finished with status "
            f"{logging_utils.format_status(result)}"
        )
        logging_utils.print_horizontal_line()


def test_task_lines_become_events_and_everything_goes_to_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[TaskEvent] = []
    clock = Clock()
    log = ExecutorLog(tmp_path / "run.log", on_event=events.append, clock=clock)
    with capture(log):
        _task("extract", True, ['{"executor": "json"}', "rows: 366"], clock, 1.5)
        _task("validate", False, ["Traceback (most recent call last):",
                                  "kfops.errors.DataError: target column 'x' not found"],
              clock, 0.25)  # fmt: skip
        logging.getLogger("kfops.anything").warning("a library warning")
        print("stray print", file=sys.stderr)
    log.close()

    assert events == [
        TaskEvent("extract", "running"),
        TaskEvent("extract", "ok", 1.5),
        TaskEvent("validate", "running"),
        TaskEvent("validate", "failed", 0.25),
    ]
    assert log.failed == ["validate"]
    assert log.error_line("validate") == "kfops.errors.DataError: target column 'x' not found"
    assert log.error_line("extract") is None
    text = (tmp_path / "run.log").read_text()
    for expected in ('{"executor": "json"}', "rows: 366", "a library warning", "stray print"):
        assert expected in text
    assert "\x1b[" not in text  # kfp's colours are stripped in the file
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # nothing on the terminal


def test_echo_streams_the_same_text(tmp_path: Path) -> None:
    echo = io.StringIO()
    clock = Clock()
    log = ExecutorLog(tmp_path / "run.log", echo=echo, clock=clock)
    with capture(log):
        _task("train", True, ["fitting"], clock, 2.0)
    log.close()
    assert "Executing task" in echo.getvalue() and "fitting" in echo.getvalue()


def test_capture_restores_streams_and_logging(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out, err = sys.stdout, sys.stderr
    log = ExecutorLog(tmp_path / "run.log")
    with pytest.raises(RuntimeError), capture(log):
        raise RuntimeError("pipeline failed")
    log.close()
    assert (sys.stdout, sys.stderr) == (out, err)
    assert root.handlers == handlers and root.level == level


def test_a_task_still_open_when_kfp_raises_is_failed(tmp_path: Path) -> None:
    events: list[TaskEvent] = []
    clock = Clock()
    log = ExecutorLog(tmp_path / "run.log", on_event=events.append, clock=clock)
    log.write("12:00:00.000 - INFO - Executing task \x1b[96m'bless'\x1b[0m\n")
    log.write("    [KFP Executor 2026-01-01 12:00:01,000 ERROR]: ValueError: bad thing\n")
    clock.now += 3.0
    log.fail_running()
    log.close()
    assert events[-1] == TaskEvent("bless", "failed", 3.0)
    assert log.error_line("bless") == "ValueError: bad thing"


def test_partial_writes_are_joined_into_lines(tmp_path: Path) -> None:
    events: list[TaskEvent] = []
    log = ExecutorLog(tmp_path / "run.log", on_event=events.append)
    for chunk in ("12:00 - INFO - Execut", "ing task 'tr", "ain'\n"):
        log.write(chunk)
    log.close()
    assert events == [TaskEvent("train", "running")]


def test_step_lines_one_per_finished_task() -> None:
    out = io.StringIO()
    lines = StepLines(out)
    lines(TaskEvent("train", "running"))
    lines(TaskEvent("train", "ok", 4.06))
    lines(TaskEvent("validate", "failed", 0.3))
    assert out.getvalue().splitlines() == [
        "  train            ok       4.1s",
        "  validate         FAILED   0.3s",
    ]


def test_other_threads_keep_their_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service that runs training in a worker (kfops trigger) keeps its own log lines: only
    the running thread's output goes to the run's log."""
    import threading

    log = ExecutorLog(tmp_path / "run.log")
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with capture(log):
            print("from the run")
            worker = threading.Thread(
                target=lambda: (
                    print("from another thread"),
                    logging.getLogger("kfops.trigger").warning("service warning"),
                )
            )
            worker.start()
            worker.join()
    finally:
        root.removeHandler(handler)
    log.close()
    text = (tmp_path / "run.log").read_text()
    out, err = capsys.readouterr()
    assert "from the run" in text and "from the run" not in out
    assert "from another thread" in out and "from another thread" not in text
    assert "service warning" in err and "service warning" not in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_step_lines_on_a_terminal_show_the_running_step() -> None:
    tty = _Tty()
    lines = StepLines(tty)
    lines(TaskEvent("train", "running"))
    assert tty.getvalue() == "  train            running"
    lines(TaskEvent("train", "ok", 2.0))
    assert tty.getvalue().endswith("\r\x1b[K  train            ok       2.0s\n")
    verbose = _Tty()
    StepLines(verbose, live=False)(TaskEvent("train", "running"))
    assert verbose.getvalue() == ""  # with --verbose the logs own the terminal

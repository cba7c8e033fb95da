"""The executor's output of a local run: to a log file, and step events for a person.

kfp.local (2.17.3) writes everything a run says to ``sys.stdout`` of the launching process:

- its orchestrator logs through the root logger, with a ``logging.StreamHandler(sys.stdout)``
  it installs around each task (``kfp/local/logging_utils.py``, ``local_logger_context``), as
  ``Executing task 'train'`` and ``Task 'train' finished with status SUCCESS``
  (``kfp/local/task_dispatcher.py``, ``run_single_task_implementation``);
- each task's own output, which ``SubprocessRunner`` reads from the subprocess's merged
  stdout/stderr and ``print``s line by line (``kfp/local/subprocess_task_handler.py``, ``run``),
  and which ``DockerRunner`` streams from the container's logs with ``print``
  (``kfp/local/docker_task_handler.py``, ``run_docker_container``);
- a few root-logger messages outside that context (skipped conditions, workspace clean-up),
  which reach whatever handlers the root logger has.

So ``capture`` swaps ``sys.stdout``/``sys.stderr`` and the root logger's handlers for one
stream, :class:`ExecutorLog`, for the duration of the run. It appends to the run's log file,
echoes to a terminal stream only when asked (``--verbose``), and turns kfp's task lines into
:class:`TaskEvent` calls; the last lines of each task's output are kept to explain a failure.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Outcome = Literal["running", "ok", "failed"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp/local/task_dispatcher.py (kfp 2.17.3): the lines that open and close every task.
_STARTED = re.compile(r"Executing task '(?P<task>[^']+)'")
_FINISHED = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>[A-Z]+)")
# A Python exception's last traceback line: "ValueError: ..." / "kfops.errors.DataError: ...".
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)\b: .+")
_TAIL_LINES = 40


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class TaskEvent:
    """A pipeline task started (``running``) or ended (``ok``/``failed``) after ``seconds``."""

    task: str
    outcome: Outcome
    seconds: float = 0.0


class ExecutorLog(io.TextIOBase):
    """A text stream that logs to a file, optionally echoes, and reports task events."""

    def __init__(
        self,
        path: Path,
        on_event: Callable[[TaskEvent], None] | None = None,
        echo: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8", errors="replace")
        self._on_event = on_event
        self._echo = echo
        self._clock = clock
        self._partial = ""
        self._started: dict[str, float] = {}
        self._current: str | None = None
        self._tails: dict[str, collections.deque[str]] = {}
        self.failed: list[str] = []

    # --- io.TextIOBase -----------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._file.write(strip_ansi(text))  # kfp colours task names; a file shows codes
        if self._echo is not None:
            self._echo.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(strip_ansi(line))
        return len(text)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
        if self._echo is not None:
            self._echo.flush()

    def close(self) -> None:
        if not self.closed:
            if self._partial:
                self._line(strip_ansi(self._partial))
                self._partial = ""
            self._file.close()
        super().close()

    def isatty(self) -> bool:  # kfp sizes its separators from the terminal; a file has none
        return False

    # --- task events -------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        started = _STARTED.search(line)
        if started:
            task = started["task"]
            self._started[task] = self._clock()
            self._current = task
            self._tails[task] = collections.deque(maxlen=_TAIL_LINES)
            self._emit(TaskEvent(task, "running"))
            return
        finished = _FINISHED.search(line)
        if finished:
            ok = finished["status"] == "SUCCESS"
            self._finish(finished["task"], ok)
            return
        if self._current is not None and line.strip():
            self._tails[self._current].append(line.strip())

    def _finish(self, task: str, ok: bool) -> None:
        start = self._started.pop(task, None)
        if start is None:
            return
        if self._current == task:
            self._current = None
        if not ok:
            self.failed.append(task)
        self._emit(TaskEvent(task, "ok" if ok else "failed", self._clock() - start))

    def fail_running(self) -> None:
        """The pipeline raised: every task still open ended in failure (kfp raises rather than
        logging a failed task's last line when the run stops on it)."""
        for task in list(self._started):
            self._finish(task, ok=False)

    def _emit(self, event: TaskEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def error_line(self, task: str) -> str | None:
        """The last exception line the task printed (its traceback's last line), if any."""
        for line in reversed(self._tails.get(task, ())):
            text = re.sub(r"^\[KFP Executor [^\]]*\]:\s*", "", line)
            if _EXCEPTION.match(text):
                return text
        return None


class _ThreadRouter(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` during a run: the running thread's text (kfp.local's
    prints and loggers run in the thread that called the pipeline) goes to the log; other
    threads (the trigger's HTTP workers, say) keep writing where they wrote before."""

    def __init__(self, owner: int, log: ExecutorLog, other: TextIO) -> None:
        super().__init__()
        self._owner, self._log, self._other = owner, log, other

    def _target(self) -> TextIO | ExecutorLog:
        return self._log if threading.get_ident() == self._owner else self._other

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False


class _ThreadHandler(logging.Handler):
    """The root logger's one handler during a run: records of the running thread go to the
    log, others to the handlers (and level) the root logger had before."""

    def __init__(
        self, owner: int, log: ExecutorLog, others: list[logging.Handler], level: int
    ) -> None:
        super().__init__()
        self._owner, self._others, self._level = owner, others, level
        self._log = logging.StreamHandler(log)
        self._log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._owner:
            self._log.handle(record)
        elif record.levelno >= self._level:
            for handler in self._others:
                if record.levelno >= handler.level:
                    handler.handle(record)


@contextlib.contextmanager
def capture(log: ExecutorLog) -> Iterator[ExecutorLog]:
    """Send this thread's stdout, stderr and root-logger records to ``log`` until the block
    ends; other threads' output is left where it went."""
    owner = threading.get_ident()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [_ThreadHandler(owner, log, handlers, level or logging.WARNING)]
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = _ThreadRouter(owner, log, old_out)  # type: ignore[assignment]
    sys.stderr = _ThreadRouter(owner, log, old_err)  # type: ignore[assignment]
    try:
        yield log
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        root.handlers[:] = handlers
        root.setLevel(level)
        log.flush()

"""The azeval error tree.

Every error a user can cause or meet derives from ``AzevalError`` and knows its exit code
and how it is shown; the CLI catches that one base class and prints ``Error: <message>``.
Anything else escaping is a bug and may show a traceback.

    AzevalError                      exit 1
    ├── InputError                   exit 2  the user's files or options are wrong; nothing sent
    │   ├── SuiteError               a suite file: names the file and the place in it
    │   ├── ConfigError              azeval.toml / [tool.azeval] / environment
    │   └── PreflightError           cases that would certainly be rejected by the service
    └── RunInterrupted               exit 130  Ctrl-C; the partial run was written

Failures inside a run (an API error, a timeout, a failed check) are not exceptions: they are
data on the case's result (see ``harness.results``). So is a target that refused us (auth,
missing deployment): the run records it and ``harness.gate`` turns it into exit 3.
"""

from __future__ import annotations

from typing import ClassVar


class AzevalError(Exception):
    """Base class of every error azeval reports to a user."""

    exit_code: ClassVar[int] = 1

    def format_message(self) -> str:
        return str(self)


class InputError(AzevalError):
    """The user's input is wrong; nothing was sent."""

    exit_code: ClassVar[int] = 2


class SuiteError(InputError):
    """A problem in a suite file, at a place inside it (``cases[3].expect``)."""

    def __init__(self, path: str, place: str, message: str) -> None:
        self.path = path
        self.place = place
        self.message = message
        super().__init__(self.format_message())

    def format_message(self) -> str:
        if self.place:
            return f"{self.path}: {self.place}: {self.message}"
        return f"{self.path}: {self.message}"


class ConfigError(SuiteError):
    """A problem in the configuration (a config file, an environment variable, an option)."""


class PreflightError(InputError):
    """Cases that the service would certainly reject; lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(self.format_message())

    def format_message(self) -> str:
        head = f"{len(self.problems)} problem(s) found before sending anything:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class RunInterrupted(AzevalError):
    """The run was interrupted; what finished was written and can be resumed."""

    exit_code: ClassVar[int] = 130

"""Suite files: load, validate (JSON Schema), expand and render (Jinja2)."""

from harness.suite.loader import find_suite_files, load_suite, load_suites
from harness.suite.model import Case, Expectation, Message, Suite, Turn

__all__ = [
    "Case",
    "Expectation",
    "Message",
    "Suite",
    "Turn",
    "find_suite_files",
    "load_suite",
    "load_suites",
]

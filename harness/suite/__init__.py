"""Suite files: load, validate (JSON Schema), expand and render (Jinja2)."""

from harness.suite.loader import (
    Loaded,
    discover,
    find_suite_files,
    load_all,
    load_suite,
    load_suites,
)
from harness.suite.model import Case, Expectation, Message, Suite, Turn

__all__ = [
    "Case",
    "Expectation",
    "Loaded",
    "Message",
    "Suite",
    "Turn",
    "discover",
    "find_suite_files",
    "load_all",
    "load_suite",
    "load_suites",
]

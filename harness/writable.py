"""Text every writer can put in a UTF-8 file, whatever a service or a suite put in it.

JSON may spell half of a character (``"\\ud83d"``, a lone surrogate); Python keeps it in a
str, but UTF-8 cannot encode it, so writing it raised in the middle of a run. JSON writers
keep it escaped, exactly as it came; text writers (HTML, Markdown, the terminal) show the
replacement character instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: Any, **options: Any) -> str:
    """``json.dumps(ensure_ascii=False)``, its lone surrogates kept as ``\\uXXXX`` escapes:
    valid UTF-8 that reads back as it was (they only ever occur inside JSON strings)."""
    text = json.dumps(value, ensure_ascii=False, default=str, **options)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def script_json(value: Any) -> str:
    """Compact JSON safe inside an HTML <script> element: no "<", ">" or "&" survives, so
    nothing in it can close the element."""
    text = json_text(value, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def printable(text: str) -> str:
    """The text with each lone surrogate replaced by U+FFFD, for HTML, Markdown, a terminal."""
    return _LONE_SURROGATE.sub("\ufffd", text)

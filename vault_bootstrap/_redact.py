"""Keep secret values out of every log line, plan, error and exception.

Secrets resolved from references are wrapped in `Sensitive`, whose `repr`/`str` are
`(sensitive)`. Each resolved value is also registered here so that `redact()` and the
logging `RedactingFilter` can scrub it from text we did not build ourselves (hvac/urllib3 log
lines, Vault error bodies that echo request fragments).
"""

from __future__ import annotations

import logging
import threading

__all__ = ["MASK", "RedactingFilter", "Sensitive", "forget_all", "redact", "register_secret"]

MASK = "(sensitive)"

_lock = threading.Lock()
_known: set[str] = set()

# Very short values would redact ordinary words; they are still masked in our own output
# because they travel as `Sensitive`, but they are not scrubbed from free text.
_MIN_SCRUB_LEN = 4


def register_secret(value: str) -> None:
    """Remember a secret value so `redact()` replaces it wherever it appears."""
    if value and len(value) >= _MIN_SCRUB_LEN:
        with _lock:
            _known.add(value)


def forget_all() -> None:
    """Test seam: clear the registry."""
    with _lock:
        _known.clear()


def redact(text: str) -> str:
    """Replace every registered secret value in `text` with `(sensitive)`."""
    if not text:
        return text
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class Sensitive:
    """A secret string that never renders itself. Use `.reveal()` only at the wire."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        import hmac

        if not isinstance(other, Sensitive):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:  # pragma: no cover - not meant as a dict key
        return 0


class RedactingFilter(logging.Filter):
    """Logging filter that formats the record's message and scrubs registered secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not crash logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, scrubbed, and drop the live exception.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        return True

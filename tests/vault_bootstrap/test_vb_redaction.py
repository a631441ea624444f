"""The redaction filter scrubs every registered secret from log lines and tracebacks."""

from __future__ import annotations

import io
import logging

from vault_bootstrap import BootstrapError, RedactingFilter, Sensitive, redact

VALUE = "s3cr3t-value-for-redaction-tests"


def _logger(stream: io.StringIO, name: str) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


def test_log_lines_args_and_tracebacks_are_scrubbed() -> None:
    Sensitive(VALUE)
    stream = io.StringIO()
    log = _logger(stream, "vb-test-redaction")
    log.info("body=%s", {"password": VALUE})
    log.warning(f"inline {VALUE}")
    try:
        raise RuntimeError(f"boom {VALUE}")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert VALUE not in text
    assert text.count("(sensitive)") == 3  # args, f-string, exception text


def test_sensitive_never_renders_and_compares_in_constant_time() -> None:
    s = Sensitive(VALUE)
    assert str(s) == repr(s) == f"{s}" == "(sensitive)"
    assert s == Sensitive(VALUE) and s != Sensitive(VALUE + "x")
    assert s.reveal() == VALUE


def test_errors_are_scrubbed_on_construction() -> None:
    Sensitive(VALUE)
    err = BootstrapError(f"vault said: bad password {VALUE}\nsecond line")
    assert VALUE not in str(err) and "\n" not in str(err)
    assert redact(f"x{VALUE}y") == "x(sensitive)y"

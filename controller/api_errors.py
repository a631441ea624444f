"""Apiserver errors about a Secret write, reduced to what is safe to repeat.

Why: the apiserver's validation messages echo the value they refuse. A user who could edit a
SealedSecret's template but not read Secrets set ``type: kubernetes.io/dockerconfigjson`` and
``.dockerconfigjson: '{{ trunc -K .password }}'``; each "invalid character 'H' ..." copied into
the status, the Event and the log gave one more character of the password (issue 12, the
status-message oracle). The rule: from an error about a Secret write, only the HTTP status,
the Status ``reason`` and each cause's field path and reason are repeated, never a message,
except the apiserver's few fixed texts that carry no value (`SAFE_MESSAGES`).
"""

from __future__ import annotations

from controller.kube_gateway import ApiError

__all__ = ["SAFE_MESSAGES", "safe_write_error"]

# Exact cause messages of the apiserver's Secret validation that never contain input.
SAFE_MESSAGES = frozenset(
    {
        "field is immutable when `immutable` is set",
        "field is immutable",
        "Required value",
    }
)


def safe_write_error(exc: ApiError) -> str:
    """``cannot write Secret: 422 Invalid (data[.dockerconfigjson]: FieldValueInvalid)``."""
    if exc.status == 0:
        return "cannot write Secret: no answer from the apiserver"
    text = f"cannot write Secret: {exc.status}"
    if exc.reason:
        text += f" {exc.reason}"
    causes = []
    for field, reason, message in getattr(exc, "causes", ()):
        text_ = f"{field}: {reason}" if field else reason
        detail = message.split(": ", 1)[-1]  # "Forbidden: field is immutable ..."
        if message in SAFE_MESSAGES or detail in SAFE_MESSAGES:
            text_ += f", {detail}"
        if field or reason:
            causes.append(text_)
    if causes:
        text += f" ({', '.join(causes[:8])})"
    return text[:300]

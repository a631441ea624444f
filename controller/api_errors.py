"""Apiserver errors about a Secret write, reduced to what is safe to repeat.

Why: the apiserver's validation messages echo the value they refuse. A user who could edit a
SealedSecret's template but not read Secrets set ``type: kubernetes.io/dockerconfigjson`` and
``.dockerconfigjson: '{{ trunc -K .password }}'``; each "invalid character 'H' ..." copied into
the status, the Event and the log gave one more character of the password (issue 12, the
status-message oracle). The rule: from an error about a Secret write, only the HTTP status,
the Status ``reason`` and each cause's field path and reason are repeated, never a message.
"""

from __future__ import annotations

from controller.kube_gateway import ApiError

__all__ = ["safe_write_error"]


def safe_write_error(exc: ApiError) -> str:
    """``cannot write Secret: 422 Invalid (data[.dockerconfigjson]: FieldValueInvalid)``."""
    if exc.status == 0:
        return "cannot write Secret: no answer from the apiserver"
    text = f"cannot write Secret: {exc.status}"
    if exc.reason:
        text += f" {exc.reason}"
    causes = [f"{field}: {reason}" if field else reason
              for field, reason in getattr(exc, "causes", ()) if field or reason]
    if causes:
        text += f" ({', '.join(causes[:8])})"
    return text[:300]

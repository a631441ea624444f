"""`ClusterOptions`: how to reach the apiserver and the controller (kubectl's override flags
plus the controller's name, namespace and URL).

Why its own public module: the CLI's parsers build it, and the core (`sealkit.kubeconfig`,
`sealkit.cluster`) and the controller (`controller.kube_http`, which sets only
``kubeconfig``/``context``) read it. It lived in `sealkit.cli._options`, so the core depended
on a CLI-private module and the controller kept a copy of the 18 kubectl fields.
A NamedTuple (`sealkit._record.Record`): immutable, and no ``dataclasses``/``typing`` import
on the CLI's cold start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sealkit._record import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any

__all__ = ["ClusterOptions", "strings"]


def strings(value: Any) -> tuple[str, ...]:
    """A repeatable flag's value(s) as a tuple of strings (None or "" is none)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value)
    return (str(value),)


class ClusterOptions(Record):
    """How to reach the apiserver and the controller: kubectl's override flags plus ours."""

    kubeconfig: str = ""
    context: str = ""
    cluster: str = ""
    user: str = ""
    namespace: str = ""
    server: str = ""
    tls_server_name: str = ""
    insecure_skip_tls_verify: bool = False
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    token: str = ""
    as_user: str = ""  # --as
    as_uid: str = ""
    as_group: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    proxy_url: str = ""
    disable_compression: bool = False
    request_timeout: str = "30s"
    controller_name: str = "sealed-secrets-controller"
    controller_namespace: str = "kube-system"
    controller_url: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClusterOptions:
        """The cluster fields of ``values``; other keys are ignored, None means default."""
        kwargs: dict[str, Any] = {}
        for name in cls._fields:
            value = values.get(name)
            if value is None:
                continue
            kwargs[name] = strings(value) if name == "as_group" else value
        return cls(**kwargs)

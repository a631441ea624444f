"""The Vault-API servers of the stack: OpenBao and HashiCorp Vault, dev and production-like.

Why one module: the two servers share the HTTP API that `vault_bootstrap` drives, but not their
binaries, storage backends or dev-mode defaults. `SEALKIT_VAULT=openbao|vault` picks one; unset
(or `both`) starts both. `VAULT_ADDR` keeps pointing at the default server (OpenBao when both run),
and `.devstack/env` names each server explicitly (see `env_vars`).

Besides the dev servers (in memory, unsealed, known root token), the stack starts each selected
server once in a production-like mode: persistent storage (raft for OpenBao, which has no `file`
backend in 2.x; `file` for Vault), sealed and uninitialised, so `vault-bootstrap apply` with
`init:` has a real server to initialise and unseal.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import binaries, ports
from .binaries import MissingComponent
from .components import Component, OpenBaoServer
from .processes import ProcessRecord
from .readiness import ComponentFailed, http_get, openbao_ready

if TYPE_CHECKING:
    from .stack import Stack

__all__ = [
    "FLAVORS",
    "ProdServer",
    "VaultDevServer",
    "dev_server",
    "env_vars",
    "prod_config",
    "reachable",
    "selection",
]

FLAVORS = ("openbao", "vault")
SELECT_ENV = "SEALKIT_VAULT"
# Client settings a server must not inherit from the caller's shell.
_CLIENT_ENV = ("VAULT_ADDR", "BAO_ADDR", "VAULT_TOKEN", "BAO_TOKEN")
# sys/health codes of a server that answers but is not an active, unsealed node.
_ANSWERING = (200, 429, 472, 473, 501, 503)


def selection(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The flavours to start, default first: `SEALKIT_VAULT` = openbao | vault | both (default)."""
    raw = (os.environ if env is None else env).get(SELECT_ENV, "").strip().lower()
    if raw in ("", "both", "openbao,vault", "all"):
        return FLAVORS
    if raw in FLAVORS:
        return (raw,)
    raise ValueError(f"{SELECT_ENV}={raw!r}: expected openbao, vault or both")


def part_name(flavor: str) -> str:
    """The stack part (Stack.missing / require) of a flavour."""
    return "openbao" if flavor == "openbao" else "hashicorp-vault"


class VaultDevServer(OpenBaoServer):
    """HashiCorp Vault in dev mode: the same flags as OpenBao's dev server, another binary.

    Dev mode keeps nothing across a restart, like OpenBao's.
    """

    name = "hashicorp-vault"

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "hashicorp-vault",
        token: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, name=name, token=token, port=port)
        self.binary = binaries.vault()


def dev_server(flavor: str, workdir: Path, **kwargs: object) -> OpenBaoServer:
    """A dev server of `flavor` (raises MissingComponent when its binary is absent)."""
    if flavor == "openbao":
        return OpenBaoServer(workdir, **kwargs)  # type: ignore[arg-type]
    if flavor == "vault":
        return VaultDevServer(workdir, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown Vault flavour {flavor!r}")


def prod_config(flavor: str, data_dir: Path, port: int, cluster_port: int) -> str:
    """HCL for a production-like server: persistent storage, TLS off on loopback only.

    OpenBao 2.x dropped the `file` backend, so it gets integrated (raft) storage; Vault gets
    `file`, the simplest persistent backend it has. JSON is valid HCL and quotes paths safely.
    """
    storage: dict[str, object]
    if flavor == "openbao":
        storage = {"raft": {"path": str(data_dir), "node_id": "devstack"}}
    else:
        storage = {"file": {"path": str(data_dir)}}
    conf = {
        "storage": storage,
        "listener": {
            "tcp": {
                "address": f"127.0.0.1:{port}",
                "cluster_address": f"127.0.0.1:{cluster_port}",
                "tls_disable": True,
            }
        },
        "api_addr": f"http://127.0.0.1:{port}",
        "cluster_addr": f"http://127.0.0.1:{cluster_port}",
        "disable_mlock": True,
        "ui": False,
    }
    return json.dumps(conf, indent=2) + "\n"


def reachable(addr: str) -> bool:
    """The server answers sys/health, whatever its state (sealed, uninitialised, standby)."""
    status, _ = http_get(f"{addr}/v1/sys/health")
    return status in _ANSWERING


class ProdServer(Component):
    """A production-like server: starts uninitialised and sealed; its data survive `stop()`.

    `reset()` removes the data so the next `start()` is uninitialised again.
    """

    def __init__(
        self, workdir: Path, flavor: str, *, name: str | None = None, port: int | None = None
    ) -> None:
        super().__init__(workdir, name or f"{part_name(flavor)}-prod")
        self.flavor = flavor
        self.binary = binaries.bao() if flavor == "openbao" else binaries.vault()
        self.fixed_port = port is not None
        self.port = port or ports.free_port()
        self.cluster_port = ports.free_port()
        self.token = ""  # no root token until someone initialises it

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / f"{self.name}-data"

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.name}.json"

    def repick_ports(self) -> None:
        self.port = ports.free_port()
        self.cluster_port = ports.free_port()

    def build_record(self) -> ProcessRecord:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_file.write_text(
            prod_config(self.flavor, self.data_dir, self.port, self.cluster_port)
        )
        argv = [self.binary, "server", f"-config={self.config_file}"]
        env = {k: "" for k in _CLIENT_ENV}
        return ProcessRecord(name=self.name, argv=argv, log=self.log, env=env)

    def is_ready(self) -> bool:
        return reachable(self.addr)

    def start(self, timeout: float | None = None) -> None:
        super().start(timeout)
        self.fixed_port = True

    def reset(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ProdServer:
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def env_vars(
    default: str | None,
    dev: Mapping[str, tuple[str, str]],
    prod: Mapping[str, str],
) -> dict[str, str]:
    """The `.devstack/env` variables that say which server is which.

    `dev`: flavour -> (addr, token); `prod`: flavour -> addr. Absent flavours give "".
    """
    out = {"SEALKIT_VAULT_DEFAULT": default or ""}
    for flavor, prefix in (("openbao", "OPENBAO"), ("vault", "HASHICORP_VAULT")):
        addr, token = dev.get(flavor, ("", ""))
        out[f"{prefix}_ADDR"] = addr
        out[f"{prefix}_TOKEN"] = token
        out[f"{prefix}_PROD_ADDR"] = prod.get(flavor, "")
    return out


ENV_VARS = tuple(env_vars(None, {}, {}))


# -- the stack's hooks (devstack.stack calls these) ------------------------------------------


def stack_servers(
    d: Path, missing: Callable[[str, MissingComponent], None], stack: Stack
) -> list[Component]:
    """Dev + production-like server of each selected flavour, default flavour first.

    A flavour whose binary is absent is reported through `missing` (its part name: an error
    under --strict), except HashiCorp Vault when SEALKIT_VAULT is unset: its build is optional
    (docs/devstack.md), so it is only listed in `stack.missing`. When no flavour can start, the
    `vault` part itself is missing.
    """
    try:
        chosen = selection()
    except ValueError as err:
        raise ComponentFailed("vault", str(err)) from None
    implicit = not os.environ.get(SELECT_ENV, "").strip()
    servers: list[Component] = []
    errors: list[str] = []
    for flavor in FLAVORS:
        part = part_name(flavor)
        if flavor not in chosen:
            # Deselected is not missing: never an error, also under --strict (CI).
            stack.missing[part] = f"{part}: not requested for this stack ({SELECT_ENV})"
            continue
        try:
            dev = dev_server(flavor, d, name=part)
            prod = ProdServer(d, flavor)
        except MissingComponent as err:
            errors.append(str(err))
            if implicit and flavor == "vault":
                stack.missing[part] = str(err)
            else:
                missing(part, err)
            continue
        prod.reset()  # the stack's production-like server starts uninitialised every time
        servers += [dev, prod]
    if not servers:
        missing("vault", MissingComponent("vault", "; ".join(errors) or "no server selected"))
    servers.sort(key=lambda c: chosen.index(_flavor_of(c)))
    return servers


def _flavor_of(server: Component) -> str:
    if isinstance(server, ProdServer):
        return server.flavor
    return "vault" if isinstance(server, VaultDevServer) else "openbao"


def record(stack: Stack, servers: list[Component]) -> None:
    """Fill `stack.vaults` (default flavour first) and the default `vault_addr`/`vault_token`."""
    for server in servers:
        info = stack.vaults.setdefault(_flavor_of(server), {})
        if isinstance(server, ProdServer):
            info["prod_addr"] = server.addr
        else:
            assert isinstance(server, OpenBaoServer)
            info["addr"], info["token"] = server.addr, server.token
    if stack.vaults:
        default = next(iter(stack.vaults.values()))
        stack.vault_addr, stack.vault_token = default.get("addr"), default.get("token")


def stack_env(vaults: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    dev = {f: (i.get("addr", ""), i.get("token", "")) for f, i in vaults.items()}
    prod = {f: i.get("prod_addr", "") for f, i in vaults.items()}
    return env_vars(next(iter(vaults), None), dev, prod)


def selection_reason(vaults: Mapping[str, object], missing: Mapping[str, str]) -> str | None:
    """Why a healthy stack must restart: SEALKIT_VAULT now selects other servers than it runs."""
    if not vaults:
        return None
    started = tuple(vaults)
    try:
        chosen = selection()
    except ValueError as err:
        return str(err)
    dropped = [f for f in started if f not in chosen]
    # A selected flavour that did not start because it was not requested then (not for want of
    # its binary: incomplete_reason handles that).
    added = [f for f in chosen if "not requested" in missing.get(part_name(f), "")]
    if dropped or added:
        return f"{SELECT_ENV} selects {','.join(chosen)}; the stack runs {','.join(started)}"
    return None


def unhealthy_reason(vaults: Mapping[str, Mapping[str, str]]) -> str | None:
    for flavor, info in vaults.items():
        part = part_name(flavor)
        if info.get("addr") and not openbao_ready(info["addr"]):
            return f"{part} is not ready"
        if info.get("prod_addr") and not reachable(info["prod_addr"]):
            return f"{part}-prod does not answer"
    return None

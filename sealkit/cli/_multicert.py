"""``sealkit --cert a.pem --cert b.pem -f s.yaml -w s.sealed.yaml``: one SealedSecret per cluster.

Seal once for N clusters (upstream #263, #120, #365) by emitting N standard SealedSecrets, one
per certificate; the blob format is untouched, so each cluster's controller (sealkit's or
upstream's) opens its own file. Each ``--cert`` is ``NAME=PATH|URL`` or a path whose file stem
names the cluster (``prod.pem`` -> ``prod``). ``-w`` is required and names the files:
``s.sealed.yaml`` -> ``s.prod.sealed.yaml``, ``s.yaml`` -> ``s.prod.yaml``.

Each cluster runs the ordinary kubeseal path (same flags, checks and output shape) into a
temporary file next to its target; only when every cluster succeeded are they all renamed into
place, so a failure leaves no partial output. Stdin is read once and replayed from memory, so
the plaintext never touches the disk.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from sealkit._exceptions import UsageError

__all__ = ["cluster_path", "parse_certs", "run_multi"]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EXCLUSIVE = (
    "--raw",
    "--merge-into",
    "--validate",
    "--re-encrypt",
    "--rotate",
    "--recovery-unseal",
    "--fetch-cert",
)


def _take(args: list[str], names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(values of the valued option `names`, the other arguments)."""
    values, rest, i = [], [], 0
    while i < len(args):
        a = args[i]
        key, eq, val = a.partition("=")
        if key in names and eq:
            values.append(val)
            i += 1
        elif a in names:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: {a}")
            values.append(args[i + 1])
            i += 2
        else:
            rest.append(a)
            i += 1
    return values, rest


def parse_certs(values: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for v in values:
        name, eq, ref = v.partition("=")
        if eq and _NAME.match(name):
            cluster = name
        elif "://" in v:
            raise UsageError(f"name the cluster of a certificate URL: --cert NAME={v}")
        else:
            ref = v
            cluster = Path(v).name.split(".")[0].lower()
            if not _NAME.match(cluster):
                raise UsageError(f"cannot name a cluster after {v!r}: use --cert NAME={v}")
        if cluster in (c for c, _ in out):
            raise UsageError(f"cluster {cluster} is given twice")
        out.append((cluster, ref))
    return out


def cluster_path(target: str, cluster: str) -> Path:
    p = Path(target)
    for marker in (".sealed.yaml", ".sealed.yml", ".sealed.json"):
        if p.name.endswith(marker):
            return p.with_name(p.name[: -len(marker)] + f".{cluster}" + marker)
    if p.suffix:
        return p.with_name(f"{p.stem}.{cluster}{p.suffix}")
    return p.with_name(f"{p.name}.{cluster}")


def run_multi(args: list[str], debug: bool) -> int:
    from sealkit.cli import _handle, _load, run_click

    try:
        cert_values, rest = _take(args, ("--cert",))
        outputs, rest = _take(rest, ("-w", "--sealed-secret-file"))
        certs = parse_certs(cert_values)
        if len(outputs) != 1:
            raise UsageError(
                "several --cert need -w FILE (one file per cluster: x.<cluster>.sealed.yaml)"
            )
        used = [a.split("=")[0] for a in rest if a.split("=")[0] in _EXCLUSIVE]
        if used:
            raise UsageError(f"several --cert only seal Secrets; not with {used[0]}")
        files, _ = _take(rest, ("-f", "--secret-file"))
        stdin = None if files and files[-1] not in ("", "-") else sys.stdin.buffer.read()
    except BaseException as exc:  # noqa: B036 - the CLI's one error contract
        return _handle(exc, debug)

    staged: list[tuple[Path, Path]] = []
    try:
        for cluster, ref in certs:
            final = cluster_path(outputs[0], cluster)
            tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{final.suffix}")
            if stdin is not None:
                sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
            code = run_click(
                lambda: _load("sealkit.cli._kubeseal:command"),
                [*rest, "--cert", ref, "-w", str(tmp)],
                prog_name="sealkit",
                debug=debug,
            )
            if code != 0:
                if tmp.exists():
                    tmp.unlink()
                return code
            staged.append((tmp, final))
        for tmp, final in staged:
            os.replace(tmp, final)
        for (cluster, _), (_, final) in zip(certs, staged, strict=True):
            sys.stderr.write(f"sealed for cluster {cluster}: {final}\n")
        staged = []
        return 0
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()

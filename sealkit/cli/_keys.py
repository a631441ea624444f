"""`sealkit keys ...`: key lifecycle commands (see docs/keys.md).

``keys report PATHS...`` says which key fingerprint opens each SealedSecret of a tree:

* offline, with ``--recovery-private-key`` (repeatable; a PEM, a key Secret, or a backup file
  holding a ``List`` of them);
* otherwise through the controller's ``/v1/verify`` (``--controller-url`` or the apiserver's
  service proxy), which only says whether it opens, not with which key; 429 answers are waited
  out.

Output is a table (or ``-o json``) of file:line, namespace/name and fingerprints, then one line
per key with the number of SealedSecrets it opens. No value, ciphertext or key material is ever
printed. Exit 0 when every SealedSecret opens, 1 when some value opens with no key (listed),
2 for usage errors. Progress goes to stderr when it is a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sealkit.cli._common import cert_options


class Progress:
    """`label: n/total` on stderr, redrawn in place on a terminal; silent otherwise."""

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled and (self.done == self.total or self.done % 10 == 0):
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total}")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def read_key_files(paths: tuple[str, ...]) -> list[bytes]:
    from sealkit._exceptions import InputError
    from sealkit.cli._common import split_list

    blobs = []
    for p in split_list(paths):
        try:
            blobs.append(Path(p).read_bytes())
        except OSError as exc:
            raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    return blobs


@click.group(
    "keys",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Key lifecycle: report, retire, restore, export, import.",
)
def command() -> None:
    pass


@command.command("report", help="Which key fingerprint opens each SealedSecret under PATHS.")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--recovery-private-key",
    "key_files",
    multiple=True,
    help="Private key file(s) for an offline report (repeatable or comma list).",
)
@click.option(
    "-o", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@cert_options
def report(paths: tuple[str, ...], key_files: tuple[str, ...], fmt: str, **cert_opts: Any) -> int:
    from sealkit.keyops import (
        find_sealed,
        load_keyset,
        report_offline,
        report_online,
        retry_throttled,
        summarise,
    )

    refs, skipped = find_sealed(paths)
    for path in skipped:
        sys.stderr.write(f"warning: {path}: not YAML/JSON, skipped\n")
    progress = Progress("keys report", len(refs))
    known: tuple[str, ...] = ()
    if key_files:
        keyset = load_keyset(read_key_files(key_files))
        known = keyset.fingerprints
        rows = report_offline(refs, keyset, progress=progress)
    else:
        from sealkit.cli._common import gateway_from_options
        from sealkit.cli._options import ClusterOptions

        gateway = gateway_from_options(ClusterOptions.from_mapping(cert_opts))
        rows = report_online(refs, gateway, progress=progress, call=retry_throttled)
    counts = summarise(rows, known)
    failing = [r for r in rows if not r.ok]
    if fmt == "json":
        out = {
            "sealedSecrets": [r.as_dict() for r in rows],
            "keys": counts,
            "unopened": len(failing),
            "skippedFiles": skipped,
        }
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        for r in rows:
            where = f"{r.path}:{r.line}"
            what = ",".join(r.fingerprints) or "-"
            extra = ""
            if r.unopened:
                extra = "  NOT OPENED: " + (
                    "all values" if r.unopened == ("*",) else ", ".join(r.unopened)
                )
            if r.error:
                extra = f"  ERROR: {r.error}"
            ref = f"{r.namespace}/{r.name}" if r.namespace else r.name
            sys.stdout.write(f"{where}\t{ref}\t{what}{extra}\n")
        sys.stdout.write(f"# {len(rows)} SealedSecret(s)\n")
        for fp, n in counts.items():
            label = "opens (key not named by the controller)" if fp == "?" else fp
            sys.stdout.write(f"# {label}: {n}\n")
        if failing:
            sys.stdout.write(f"# not opened by any key: {len(failing)}\n")
    sys.stdout.flush()
    if failing:
        sys.stderr.write(
            f"error: {len(failing)} SealedSecret(s) have values that no "
            f"{'given ' if key_files else ''}key opens\n"
        )
        return 1
    return 0


def cluster_options(func: Any) -> Any:
    """Where the key Secrets and the controller are (kubeseal's names and defaults)."""
    from sealkit.cli._common import env

    for option in reversed(
        [
            click.option(
                "--controller-name",
                envvar=env("controller-name"),
                default="sealed-secrets-controller",
                show_default=True,
            ),
            click.option(
                "--controller-namespace",
                envvar=env("controller-namespace"),
                default="kube-system",
                show_default=True,
                help="Namespace of the controller and its key Secrets.",
            ),
            click.option("--kubeconfig", envvar=env("kubeconfig"), default=""),
            click.option("--context", envvar=env("context"), default=""),
            click.option(
                "--request-timeout", envvar=env("request-timeout"), default="30s", show_default=True
            ),
        ]
    ):
        func = option(func)
    return func


def key_gateway(opts: dict[str, Any]) -> Any:
    from sealkit.cli._common import parse_duration
    from sealkit.keyops import KeySecretsGateway

    return KeySecretsGateway(
        namespace=opts["controller_namespace"],
        kubeconfig=opts["kubeconfig"] or None,
        context=opts["context"] or None,
        timeout=parse_duration(opts["request_timeout"]),
    )


def _leader_metrics(opts: dict[str, Any], gw: Any, metrics_url: str, fingerprint: str) -> int:
    """Usage count from the leading replica; Services balance, so ask a few times."""
    from sealkit._exceptions import InputError
    from sealkit.cluster import fetch_url
    from sealkit.keyops import key_usage_from_metrics

    last: InputError | None = None
    for _ in range(8):
        if metrics_url:
            text = fetch_url(metrics_url.rstrip("/") + "/metrics").decode("utf-8", "replace")
        else:
            text = gw.metrics_via_proxy(
                f"{opts['controller_name']}-metrics", opts["controller_namespace"]
            )
        try:
            return key_usage_from_metrics(text, fingerprint)
        except InputError as exc:
            last = exc
    raise InputError(f"refused: cannot ask the leading controller replica ({last})")


@command.command("retire", help="Stop the controller loading key FINGERPRINT (never deletes).")
@click.argument("fingerprint")
@click.option(
    "--tree",
    "trees",
    multiple=True,
    help="Also refuse while a SealedSecret under this path opens with the key.",
)
@click.option(
    "--metrics-url",
    default="",
    help="The controller's metrics address (default: Service "
    "<controller-name>-metrics, port metrics, through the apiserver proxy).",
)
@cluster_options
def retire(fingerprint: str, trees: tuple[str, ...], metrics_url: str, **opts: Any) -> int:
    from sealkit._exceptions import SealkitError
    from sealkit.crypto import b64decode
    from sealkit.keyops import (
        RETIRED,
        find_sealed,
        load_keyset,
        newest_active,
        relabel,
        report_offline,
        select_key,
    )

    gw = key_gateway(opts)
    secrets = gw.key_secrets()
    target = select_key(secrets, fingerprint, label="active")
    name = f"{opts['controller_namespace']}/{target['metadata']['name']}"
    if newest_active(secrets) == fingerprint:
        raise SealkitError(
            f"refused: {fingerprint} is the newest key, the one /v1/cert.pem "
            "serves; make a new key first"
        )
    in_use = _leader_metrics(opts, gw, metrics_url, fingerprint)
    if in_use:
        raise SealkitError(
            f"refused: the controller reports {in_use} SealedSecret(s) that "
            f"open with {fingerprint}; re-encrypt them first "
            "(sealkit reencrypt-tree)"
        )
    if trees:
        refs, _ = find_sealed(trees)
        keyset = load_keyset(
            [
                b64decode(str((s.get("data") or {}).get("tls.key") or ""))
                for s in secrets
                if (s.get("data") or {}).get("tls.key")
            ]
        )
        users = [
            f"{r.path}:{r.line} {r.namespace}/{r.name}"
            for r in report_offline(refs, keyset)
            if fingerprint in r.fingerprints
        ]
        if users:
            for u in users[:20]:
                sys.stderr.write(f"still opens with the key: {u}\n")
            raise SealkitError(
                f"refused: {len(users)} SealedSecret(s) in the tree open with "
                f"{fingerprint}; re-encrypt them first (sealkit reencrypt-tree)"
            )
    gw.replace(relabel(target, RETIRED))
    sys.stderr.write(
        f"retired key {fingerprint} (Secret {name}): labelled {RETIRED}, not "
        f"deleted; undo with `sealkit keys restore {fingerprint}`\n"
    )
    return 0


@command.command("restore", help="Make a retired key FINGERPRINT active again.")
@click.argument("fingerprint")
@cluster_options
def restore(fingerprint: str, **opts: Any) -> int:
    from sealkit.keyops import RETIRED, relabel, select_key

    gw = key_gateway(opts)
    target = select_key(gw.key_secrets(), fingerprint, label=RETIRED)
    gw.replace(relabel(target, "active"))
    sys.stderr.write(
        f"restored key {fingerprint} (Secret {opts['controller_namespace']}/"
        f"{target['metadata']['name']}): labelled active\n"
    )
    return 0


@command.command("export", help="Seal this cluster's keys for another cluster's certificate.")
@click.option("--to-cert", required=True, help="The other cluster's certificate (file or URL).")
@click.option(
    "--fingerprint",
    "fingerprints",
    multiple=True,
    help="Only these keys (default: every active key).",
)
@click.option(
    "--to-namespace",
    default="kube-system",
    show_default=True,
    help="The other controller's namespace (where its key Secrets live).",
)
@click.option(
    "-o", "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option("-w", "--output", "output", default="", help="Write here (atomic) not stdout.")
@cluster_options
def export(
    to_cert: str,
    fingerprints: tuple[str, ...],
    to_namespace: str,
    fmt: str,
    output: str,
    **opts: Any,
) -> int:
    from sealkit._exceptions import InputError
    from sealkit.cli._common import load_public_key_from_options
    from sealkit.files import atomic_write
    from sealkit.keyops import KEY_LABEL, export_keys, fingerprint_of_secret
    from sealkit.output import dump_all

    public_key = load_public_key_from_options(
        {"cert": to_cert, "request_timeout": opts["request_timeout"]}
    )
    secrets = key_gateway(opts).key_secrets()
    chosen = [
        s
        for s in secrets
        if fingerprint_of_secret(s)
        and (
            fingerprint_of_secret(s) in fingerprints
            if fingerprints
            else ((s.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL) == "active"
        )
    ]
    missing = set(fingerprints) - {fingerprint_of_secret(s) for s in chosen}
    if missing:
        raise InputError(f"no key Secret with fingerprint {sorted(missing)[0]}")
    if not chosen:
        raise InputError(f"no active key Secret in namespace {opts['controller_namespace']}")
    docs = export_keys(
        chosen, public_key, namespace=to_namespace, source=opts["controller_namespace"]
    )
    text = dump_all(docs, fmt)
    if output:
        atomic_write(output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    for s in chosen:
        sys.stderr.write(f"exported key {fingerprint_of_secret(s)} ({s['metadata']['name']})\n")
    return 0


@command.command(
    "import",
    help="Apply exported keys (they unseal as pending key Secrets); with --activate, "
    "check them and make them the controller's keys.",
)
@click.argument("file", required=False)
@click.option(
    "--activate",
    is_flag=True,
    help="Relabel the pending Secrets as active key Secrets (needs update on Secrets in the "
    "controller namespace) and delete the import SealedSecrets.",
)
@click.option(
    "--fingerprint",
    "fingerprints",
    multiple=True,
    help="With --activate: also activate the pending key with this fingerprint (repeatable; "
    "for exports applied by kubectl or Argo CD, no FILE needed).",
)
@click.option(
    "--timeout",
    "wait",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the controller to unseal each pending key Secret.",
)
@cluster_options
def import_(
    file: str | None, activate: bool, fingerprints: tuple[str, ...], wait: float, **opts: Any
) -> int:
    from sealkit._exceptions import InputError, UsageError
    from sealkit.keyops import (
        KEY_LABEL,
        PENDING,
        PENDING_LABEL,
        activated,
        check_pending,
        fingerprint_of_secret,
    )

    if not file and not (activate and fingerprints):
        raise UsageError("give the FILE `keys export` wrote, or --activate --fingerprint FP...")
    ns = opts["controller_namespace"]
    gw = key_gateway(opts)
    wanted: dict[str, str] = {}  # fingerprint -> pending Secret name ("" = any)
    if file:
        wanted = _apply_export(file, gw, ns, wait)
    for fp in fingerprints:
        wanted.setdefault(fp, "")
    if not activate:
        sys.stderr.write(
            f"{len(wanted)} key(s) pending; activate with: sealkit keys import --activate {file}\n"
        )
        return 0
    pending = gw.secrets_labelled(f"{PENDING_LABEL}={PENDING}")
    active = {
        fingerprint_of_secret(s)
        for s in gw.key_secrets()
        if ((s.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL) == "active"
    }
    todo: list[tuple[str, dict[str, Any]]] = []
    for fp, name in wanted.items():
        if fp in active:
            sys.stderr.write(f"key {fp} is already active\n")
            continue
        matches = [
            s
            for s in pending
            if fingerprint_of_secret(s) == fp and (not name or s["metadata"]["name"] == name)
        ]
        if not matches:
            raise InputError(f"refused: no pending Secret in namespace {ns} holds key {fp}")
        for m in matches:  # every candidate must be a well-formed pair (one line each)
            if check_pending(m, namespace=ns) != fp:
                raise InputError(f"refused: pending Secret {m['metadata']['name']} != {fp}")
        todo.append((fp, matches[0]))
    for fp, secret in todo:  # every check passed before anything is written
        name = secret["metadata"]["name"]
        gw.replace(activated(secret))
        gw.delete_sealed(ns, name)  # its job is done; the key Secret has no ownerReference
        sys.stderr.write(f"activated key {fp} (Secret {ns}/{name}): labelled active\n")
    named = {id(s) for _, s in todo}
    for s in pending:
        found = fingerprint_of_secret(s)
        if id(s) not in named and found not in wanted:
            sys.stderr.write(
                f"note: pending Secret {ns}/{s['metadata']['name']} (key {found}) was not "
                "named, left pending\n"
            )
    return 0


def _apply_export(file: str, gw: Any, ns: str, wait: float) -> dict[str, str]:
    """Create the export's SealedSecrets and wait for their pending Secrets; checks each."""
    import time

    from sealkit._exceptions import ClusterError, InputError
    from sealkit.documents import load_documents
    from sealkit.files import read_input
    from sealkit.keyops import (
        KEY_LABEL,
        check_pending,
        export_fingerprint,
        fingerprint_of_secret,
        is_key_export,
        is_old_export,
    )

    docs = [d for d in load_documents(read_input(file), source=file) if d is not None]
    items = [
        i
        for d in docs
        for i in (d.get("items") if isinstance(d, dict) and d.get("kind") == "List" else [d])
    ]
    if items and all(isinstance(d, dict) and is_old_export(d) for d in items):
        raise InputError(
            f"{file}: made by an older `sealkit keys export` (its Secrets carry the key label, "
            "which the controller refuses); export the keys again"
        )
    if not items or not all(isinstance(d, dict) and is_key_export(d) for d in items):
        raise InputError(f"{file}: not a `sealkit keys export` output")
    wanted: dict[str, str] = {}
    for d in items:
        name = d["metadata"]["name"]
        where = d["metadata"].get("namespace") or ns
        if where != ns:
            raise InputError(
                f"{file}: {name} is for namespace {where}, not the controller namespace {ns} "
                f"(export with --to-namespace {ns})"
            )
        d["metadata"]["namespace"] = ns
        fp = export_fingerprint(d)
        got = gw.get_secret(ns, name)
        if got and ((got.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL):
            if fingerprint_of_secret(got) != fp:
                raise InputError(f"refused: Secret {ns}/{name} is a key Secret but not {fp}")
            sys.stderr.write(f"key {fp} was imported before (Secret {ns}/{name})\n")
            wanted[fp] = name
            continue
        if got is None:
            try:
                gw.create_sealed(ns, d)
            except ClusterError as exc:
                if ": 409" not in str(exc):
                    raise
                existing = gw.get_sealed(ns, name) or {}
                if existing.get("spec") != d["spec"]:
                    raise ClusterError(
                        f"a different SealedSecret {ns}/{name} already exists; refusing to "
                        "use it (delete it if it is not yours)"
                    ) from None
        deadline = time.monotonic() + wait
        while got is None:
            refused = gw.sealed_status_message(ns, name)
            if "refusing to write" in refused:
                raise ClusterError(f"the controller refused {ns}/{name}: {refused}")
            if time.monotonic() > deadline:
                why = f" ({refused})" if refused else ""
                raise ClusterError(
                    f"the controller did not unseal {ns}/{name} within {wait:g}s{why} "
                    "(is the file sealed for this cluster's certificate?)"
                )
            time.sleep(0.5)
            got = gw.get_secret(ns, name)
        actual = check_pending(got, namespace=ns)
        if actual != fp:
            raise InputError(f"refused: Secret {ns}/{name} holds key {actual}, the file says {fp}")
        sys.stderr.write(f"key {fp} unsealed, pending (Secret {ns}/{name})\n")
        wanted[fp] = name
    return wanted


@command.command(
    "unwrap",
    help="Store a transit-wrapped key as a plain key Secret again "
    "(before rolling back to upstream's controller).",
)
@click.argument("fingerprints", nargs=-1)
@click.option("--all", "all_keys", is_flag=True, help="Every wrapped key.")
@cluster_options
def unwrap(fingerprints: tuple[str, ...], all_keys: bool, **opts: Any) -> int:
    """Needs VAULT_ADDR and VAULT_TOKEN with `decrypt` on the transit key."""
    import base64
    import copy
    import os

    from sealkit._exceptions import ClusterError, UsageError
    from sealkit.keyops import fingerprint_of_secret

    if not fingerprints and not all_keys:
        raise UsageError("name the keys to unwrap (FINGERPRINT...) or pass --all")
    addr, token = os.environ.get("VAULT_ADDR", ""), os.environ.get("VAULT_TOKEN", "")
    if not addr or not token:
        raise UsageError("keys unwrap needs VAULT_ADDR and VAULT_TOKEN")
    gw = key_gateway(opts)
    wrapped = [
        s
        for s in gw.key_secrets()
        if ((s.get("metadata") or {}).get("annotations") or {}).get(WRAP_ANNOTATION)
        and (all_keys or fingerprint_of_secret(s) in fingerprints)
    ]
    if not wrapped:
        raise UsageError("no wrapped key Secret matches")
    import hvac

    client = hvac.Client(url=addr, token=token, timeout=15)
    for s in wrapped:
        spec = s["metadata"]["annotations"][WRAP_ANNOTATION]
        _, _, rest = spec.partition(":")
        mount, _, key = rest.partition("/")
        try:
            ct = base64.b64decode(s["data"]["tls.key"]).decode()
            pem_b64 = client.secrets.transit.decrypt_data(
                name=key, ciphertext=ct, mount_point=mount
            )["data"]["plaintext"]
        except Exception as exc:  # noqa: BLE001 - hvac/requests errors: the type only
            raise ClusterError(
                f"cannot unwrap {s['metadata']['name']} with {spec} ({type(exc).__name__})"
            ) from None
        out = copy.deepcopy(s)
        out["data"]["tls.key"] = pem_b64
        del out["metadata"]["annotations"][WRAP_ANNOTATION]
        gw.replace(out)
        sys.stderr.write(
            f"unwrapped key {fingerprint_of_secret(s)} "
            f"(Secret {opts['controller_namespace']}/{s['metadata']['name']})\n"
        )
    return 0


WRAP_ANNOTATION = "sealkit.dev/key-wrap"

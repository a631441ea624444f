"""`sealkit seal-tree`: seal every plaintext Secret of a GitOps tree in one process.

Naming rule
-----------
Each source file that holds at least one plaintext Secret (`sealkit.scan` decides what that is)
gets ONE twin beside it: ``foo.yaml`` → ``foo.sealed.yaml``, ``foo.yml`` → ``foo.sealed.yml``,
``foo.json`` → ``foo.sealed.json`` (JSON in, JSON out, in kubeseal's JSON shape). The twin holds
one SealedSecret per sealable Secret, in source order; a `kind: List` becomes a List of
SealedSecrets (same apiVersion). Other documents (Deployments, empty Secrets, SealedSecrets) are
not copied. Files named ``*.sealed.{yaml,yml,json}`` are twins and are never read as sources.

Up to date, without the private key
-----------------------------------
Ciphertexts are random, so a twin cannot be compared with a fresh seal, and the private key is
not where `--check` runs. Each sealed document therefore carries, in its *outer* metadata (never
the template, so nothing reaches the Secret in the cluster):

``sealkit.dev/source-digest: hmac-sha256:<key id>:<hex>``
    HMAC-SHA256 over the canonical source (name, namespace, scope, every non-value field of the
    Secret, and the value bytes), keyed with a 32-byte *digest key*.
``sealkit.dev/cert-fingerprint: SHA256:…``
    The sealing certificate's public-key fingerprint (public information).

Threat model. The repository (twins included) may be read by anyone; plaintext and the digest
key exist only where plaintext exists (the operator's checkout, the CI job that seals). A plain
SHA-256 of the values would let every reader of the repository confirm guesses of low-entropy
values offline ("is the DB password `hunter2`?"); salting or a slow KDF only slows that down.
An HMAC under a key that never leaves the plaintext's side reveals nothing about the values to
someone without the key, while `--check` (which needs the plaintext anyway) can recompute it.
The key id (first 8 bytes of SHA-256 over a prefix and the key) only tells "another digest key"
apart from "stale". File times are no help: Git does not keep them. Out of scope: the digest is
not a signature. Whoever can write the repository can write any annotation (or any ciphertext);
`--check` catches forgotten reseals, not tampering, which the controller's decryption does.

The digest key comes from ``--digest-key-file`` / ``SEALKIT_DIGEST_KEY_FILE``, else
``<DIR>/.sealkit/digest.key``, created on first use (mode 0600) next to a ``.gitignore``
holding ``*`` so Git never picks it up. Share it with everyone who seals the same tree through
the channel that carries the plaintext; with another key every twin looks stale and is resealed.

A twin document is up to date iff it is a SealedSecret with the source's namespace and name,
its encryptedData keys are the source's keys, its digest equals the recomputed one, and (when a
certificate is known: always when sealing, with ``--cert`` under ``--check``) its fingerprint is
the certificate's. Sealing reuses up-to-date documents untouched and rewrites a twin only when
its content changes, so re-running seal-tree produces no Git noise (upstream pain point #515).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError
from sealkit.model import secret_values
from sealkit.scan import (
    MANIFEST_SUFFIXES,
    IgnoreRules,
    discover_files,
    has_values,
    read_documents,
    read_file_text,
)
from sealkit.scopes import Scope, scope_of, with_scope_annotations

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "CERT_ANNOTATION",
    "DIGEST_ANNOTATION",
    "DigestKey",
    "FileResult",
    "TreeOptions",
    "TreeRun",
    "commit_results",
    "discard_results",
    "is_twin_path",
    "load_or_create_digest_key",
    "new_digest_key",
    "run_tree",
    "save_digest_key",
    "source_digest",
    "twin_path",
]

DIGEST_ANNOTATION = "sealkit.dev/source-digest"
CERT_ANNOTATION = "sealkit.dev/cert-fingerprint"
TWIN_MARK = ".sealed"
DEFAULT_DIGEST_KEY = Path(".sealkit") / "digest.key"
_KEY_ID_PREFIX = b"sealkit digest key id\0"


# --------------------------------------------------------------------------- naming


def twin_path(source: Path) -> Path:
    """``dir/foo.yaml`` → ``dir/foo.sealed.yaml`` (same suffix, so JSON stays JSON)."""
    return source.with_name(f"{source.stem}{TWIN_MARK}{source.suffix}")


def is_twin_path(path: Path) -> bool:
    return path.suffix in MANIFEST_SUFFIXES and path.stem.endswith(TWIN_MARK)


# --------------------------------------------------------------------------- digest


@dataclass(frozen=True)
class DigestKey:
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(_KEY_ID_PREFIX + self.secret).hexdigest()[:16]


def load_or_create_digest_key(path: Path, *, create: bool) -> DigestKey | None:
    """Read the digest key (64 hex chars); create it (0600, self-ignoring dir) if asked.

    Returns None when the file is missing and ``create`` is false.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            return None
        return _create_digest_key(path)
    except (OSError, UnicodeDecodeError):
        raise InputError(f"{path}: cannot read digest key") from None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) < 16:
        raise InputError(f"{path}: digest key must be at least 32 hex characters")
    return DigestKey(raw)


def new_digest_key() -> DigestKey:
    return DigestKey(secrets.token_bytes(32))


def _create_digest_key(path: Path) -> DigestKey:
    key = new_digest_key()
    save_digest_key(path, key)
    return key


def save_digest_key(path: Path, key: DigestKey) -> None:
    """Write a new digest key file (0600, never over an existing one)."""
    from sealkit.files import atomic_write

    raw = key.secret
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.name == ".sealkit":
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# sealkit: never commit the digest key\n*\n", encoding="ascii")
    atomic_write(path, (raw.hex() + "\n").encode("ascii"), mode=0o600, overwrite=False)


def source_digest(
    secret: Mapping[str, Any], identity: tuple[str, str, Scope], key: DigestKey
) -> str:
    """``hmac-sha256:<key id>:<hex>`` over the canonical source Secret (see module doc)."""
    rest = {k: v for k, v in secret.items() if k not in ("data", "stringData", "status")}
    values = {k: v.hex() for k, v in sorted(secret_values(secret).items())}
    namespace, name, scope = identity
    try:
        canonical = _canonical_json(
            {
                "v": 1,
                "namespace": namespace,
                "name": name,
                "scope": scope.value,
                "secret": rest,
                "values": values,
            }
        )
    except TypeError:
        raise InputError("Secret has map keys that are not strings") from None
    mac = hmac.new(key.secret, canonical, hashlib.sha256).hexdigest()
    return f"hmac-sha256:{key.key_id}:{mac}"


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


# --------------------------------------------------------------------------- planning


@dataclass
class TreeOptions:
    scope: Scope | None = None  # --scope (None/strict keeps each source's annotations)
    # -n: fills a missing namespace only. Unlike kubeseal's -n it does not have to match the
    # declared ones, since a tree spans many namespaces.
    namespace: str | None = None
    default_namespace: Callable[[], str] | str | None = None  # kubeconfig context, lazily
    exclude: Sequence[str] = ()
    digest_key_file: Path | None = None


@dataclass
class Unit:
    """One plaintext Secret to seal, and what its twin document must look like."""

    source: Path
    line: int
    secret: dict[str, Any]
    namespace: str
    name: str
    scope: Scope
    digest: str = ""
    sealed: dict[str, Any] | None = None  # the up-to-date twin document (reused or new)
    reason: str = ""  # why it needs sealing ("" = up to date)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass
class FilePlan:
    source: Path
    twin: Path
    fmt: str  # "yaml" | "json"
    # each entry: ("doc", unit) or ("list", apiVersion, [units])
    layout: list[tuple[Any, ...]] = field(default_factory=list)
    existing: list[Any] | None = None  # parsed twin documents, None if no twin file
    twin_error: str = ""

    @property
    def units(self) -> list[Unit]:
        out: list[Unit] = []
        for entry in self.layout:
            out.extend([entry[1]] if entry[0] == "doc" else entry[2])
        return out

    def render_docs(self) -> list[Any]:
        from sealkit.output import kube_order

        docs: list[Any] = []
        for entry in self.layout:
            if entry[0] == "doc":
                docs.append(entry[1].sealed)
            else:
                docs.append(
                    {
                        "apiVersion": entry[1],
                        "kind": "List",
                        "items": [kube_order(u.sealed) for u in entry[2]],
                    }
                )
        return docs


def _identity(secret: Mapping[str, Any], opts: TreeOptions) -> tuple[str, str, Scope]:
    """(namespace, name, scope) exactly as `sealkit.model.seal_secret` will resolve them."""
    metadata = secret.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InputError("metadata must be a map")
    for field_name in ("name", "namespace"):
        if not isinstance(metadata.get(field_name) or "", str):
            raise InputError(f"metadata.{field_name} must be a string")
    name = str(metadata.get("name") or "")
    if not name:
        raise InputError("missing metadata.name in input Secret")
    namespace = str(metadata.get("namespace") or "")
    meta_for_scope: Mapping[str, Any] = metadata
    if opts.scope is not None and opts.scope is not Scope.STRICT:
        meta_for_scope = {
            "annotations": with_scope_annotations(metadata.get("annotations"), opts.scope)
        }
    scope = scope_of(meta_for_scope)
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        fallback = opts.namespace or (
            opts.default_namespace() if callable(opts.default_namespace)
            else opts.default_namespace
        )
        namespace = fallback or ""
        if not namespace:
            raise InputError("secret must declare a namespace")
    return namespace, name, scope


def _source_units(path: Path, text: str, opts: TreeOptions) -> list[tuple[Any, ...]]:
    layout: list[tuple[Any, ...]] = []

    def unit(obj: dict[str, Any], line: int) -> Unit:
        try:
            ns, name, scope = _identity(obj, opts)
            secret_values(obj)  # validate now: bad base64 is an input error, found before any write
        except InputError as exc:
            raise InputError(f"{path}:{line}: {exc.message}") from None
        return Unit(path, line, obj, ns, name, scope)

    for doc in read_documents(text, str(path)):
        obj = doc.obj
        if _sealable(obj):
            layout.append(("doc", unit(obj, doc.line)))
        elif isinstance(obj, dict) and obj.get("kind") == "List":
            items = obj.get("items") if isinstance(obj.get("items"), list) else []
            units = [
                unit(item, doc.item_lines[i] if i < len(doc.item_lines) else doc.line)
                for i, item in enumerate(items)
                if _sealable(item)
            ]
            if units:
                layout.append(("list", obj.get("apiVersion") or "v1", units))
    return layout


def _sealable(obj: Any) -> bool:
    from sealkit.model import is_secret

    return is_secret(obj) and has_values(obj)


def _twin_index(docs: Sequence[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items or []:
            if isinstance(item, dict) and item.get("kind") == "SealedSecret":
                meta = item.get("metadata") or {}
                key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
                index.setdefault(key, item)
    return index


def _staleness(
    unit: Unit, twin: dict[str, Any] | None, fingerprint: str | None
) -> str:
    if twin is None:
        return "no sealed twin"
    annotations = (twin.get("metadata") or {}).get("annotations") or {}
    digest = annotations.get(DIGEST_ANNOTATION)
    if not isinstance(digest, str):
        return "twin has no source digest"
    if digest != unit.digest:
        if digest.split(":")[1:2] != unit.digest.split(":")[1:2]:
            return "twin was sealed with another digest key"
        return "twin is out of date"
    encrypted = (twin.get("spec") or {}).get("encryptedData") or {}
    if not isinstance(encrypted, dict) or set(encrypted) != set(secret_values(unit.secret)):
        return "twin keys differ from the source"
    if fingerprint is not None and annotations.get(CERT_ANNOTATION) != fingerprint:
        return "twin was sealed with another certificate"
    return ""


def _plan_file(
    path: Path, opts: TreeOptions, key: DigestKey | None, fingerprint: str | None
) -> tuple[FilePlan | None, str | None, Path | None]:
    """(plan, error, orphan twin) for one discovered file."""
    if is_twin_path(path):
        return None, None, None if twin_path_source(path).exists() else path
    try:
        text = read_file_text(path)
        layout = _source_units(path, text, opts) if "Secret" in text else []
    except InputError as exc:
        return None, exc.message, None
    twin = twin_path(path)
    if not layout:
        return None, None, twin if twin.exists() else None
    plan = FilePlan(path, twin, "json" if path.suffix == ".json" else "yaml", layout)
    if twin.exists():
        try:
            plan.existing = [d.obj for d in read_documents(read_file_text(twin), str(twin))]
        except InputError as exc:
            plan.existing, plan.twin_error = [], exc.message
    index = _twin_index(plan.existing or [])
    for unit in plan.units:
        if key is None:
            unit.reason = "no digest key"
            continue
        try:
            unit.digest = source_digest(
                unit.secret, (unit.namespace, unit.name, unit.scope), key
            )
        except InputError as exc:
            return None, f"{unit.source}:{unit.line}: {exc.message}", None
        found = index.get((unit.namespace, unit.name))
        unit.reason = _staleness(unit, found, fingerprint)
        if not unit.reason:
            unit.sealed = found
    return plan, None, None


@dataclass
class UnitResult:
    """What the parent needs to report about one Secret (never its values)."""

    line: int
    ref: str
    reason: str  # why it was (or must be) sealed; "" = up to date


@dataclass
class FileResult:
    source: Path
    twin: Path
    units: list[UnitResult]
    sealed: int = 0
    staged: Path | None = None  # seal mode: temp file holding the new twin, to rename over it
    layout_problem: str = ""  # check mode: why the twin would change although units are fresh


@dataclass
class TreeRun:
    files: list[FileResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)  # twins whose source has no Secret left

    @property
    def secrets(self) -> int:
        return sum(len(f.units) for f in self.files)


def run_tree(
    root: Path,
    opts: TreeOptions,
    *,
    key: DigestKey | None,
    fingerprint: str | None,
    public_key: RSAPublicKey | None = None,
    force: bool = False,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> TreeRun:
    """Plan every file and, given ``public_key``, seal and render the changed twins. No writes.

    Without ``public_key`` this is `--check`: staleness only. With it, each changed twin is
    written to a hidden temp file beside it (``staged``); the caller then calls
    `commit_results` (rename them all) if ``errors`` is empty, else `discard_results`: a bad
    input anywhere never leaves some twins written and others not. With ``jobs`` > 1 the files
    are split among forked workers, which parse, seal, emit and stage in parallel and send
    back only these small results. ``key`` None (no digest key yet) makes
    every twin stale. ``progress(done, total)`` counts source files.
    """
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    ignore = IgnoreRules.load(opts.exclude, root=root)
    paths, twins = [], []
    for path in discover_files([root], ignore=ignore):
        (twins if is_twin_path(path) else paths).append(path)
    _SHARED.update(
        opts=opts, key=key, fingerprint=fingerprint, public_key=public_key, force=force,
        paths=paths,
    )
    done = [0]

    def on_chunk(n_files: int) -> None:
        done[0] += n_files
        if progress:
            progress(done[0], len(paths))

    try:
        results = _map_chunks(_run_chunk, len(paths), jobs, on_chunk, _discard_staged)
    finally:
        _SHARED.clear()
    run = TreeRun(orphans=[t for t in twins if not twin_path_source(t).exists()])
    for result, error, orphan in results:
        if result is not None:
            run.files.append(result)
        if error is not None:
            run.errors.append(error)
        if orphan is not None:
            run.orphans.append(orphan)
    return run


def _discard_staged(results: list[Any]) -> None:
    discard_results(TreeRun(files=[r for r, _, _ in results if r is not None]))


def _run_chunk(bounds: tuple[int, int]) -> list[Any]:
    """Worker body: plan (and seal, render, stage) files [lo, hi) of the shared path list."""
    out: list[Any] = []
    try:
        _run_files(_SHARED["paths"][slice(*bounds)], out)
    except BaseException:
        _discard_staged(out)
        raise
    return out


def _run_files(paths: Sequence[Path], out: list[Any]) -> None:
    opts, key, fingerprint = _SHARED["opts"], _SHARED["key"], _SHARED["fingerprint"]
    public_key, force = _SHARED["public_key"], _SHARED["force"]
    for path in paths:
        plan, error, orphan = _plan_file(path, opts, key, fingerprint)
        if plan is None:
            out.append((None, error, orphan))
            continue
        if force:
            for unit in plan.units:
                unit.reason = unit.reason or "forced"
        units = [UnitResult(u.line, u.ref, u.reason) for u in plan.units]
        result = FileResult(plan.source, plan.twin, units)
        if public_key is None:
            if not any(u.reason for u in plan.units):
                result.layout_problem = check_file_layout(plan)
        else:
            try:
                stale = [u for u in plan.units if u.reason]
                for unit in stale:
                    seal_unit(unit, public_key, opts, fingerprint or "")
            except InputError as exc:
                out.append((None, exc.message, None))
                continue
            result.sealed = len(stale)
            if file_needs_write(plan):
                from sealkit.files import write_temp

                # Staged, not renamed: the parent commits only if every file succeeded.
                # No fsync per twin: derived files; a torn one is just stale to --check.
                result.staged = write_temp(plan.twin, render(plan), fsync=False)
        out.append((result, None, None))


# Worker state: set in the parent just before forking, so children inherit it (no pickling of
# keys, callables or options); only index ranges go to the workers, small results come back.
_SHARED: dict[str, Any] = {}
_MIN_PER_WORKER = 50


def commit_results(run: TreeRun) -> list[FileResult]:
    """Rename every staged twin into place (atomic per file); returns those written."""
    written = [f for f in run.files if f.staged is not None]
    try:
        for result in written:
            os.replace(result.staged or "", result.twin)
            result.staged = None
    except BaseException:
        discard_results(run)
        raise
    return written


def discard_results(run: TreeRun) -> None:
    """Remove every staged temp file (after an error or an interrupt)."""
    for result in run.files:
        if result.staged is not None:
            with contextlib.suppress(OSError):
                os.unlink(result.staged)
            result.staged = None


def _map_chunks(
    func: Callable[[tuple[int, int]], list[Any]],
    count: int,
    jobs: int,
    on_chunk: Callable[[int], None] | None = None,
    cleanup: Callable[[list[Any]], None] | None = None,
) -> list[Any]:
    """``func`` over index ranges covering ``count`` items, in order; forked if worthwhile.

    If any chunk fails, ``cleanup`` gets the results of every chunk that did not (so staged
    files never leak) and the first error is raised.
    """
    import multiprocessing

    workers = min(jobs, count // _MIN_PER_WORKER)
    if "fork" not in multiprocessing.get_all_start_methods():
        workers = 1
    size = max(10, -(-count // (max(workers, 1) * 8)))  # ~8 chunks per worker: steady progress
    bounds = [(i, min(i + size, count)) for i in range(0, count, size)]
    results: list[Any] = []
    if workers <= 1:
        try:
            for lo, hi in bounds:
                results.extend(func((lo, hi)))
                if on_chunk:
                    on_chunk(hi - lo)
        except BaseException:
            if cleanup:
                cleanup(results)
            raise
        return results
    import sys
    from concurrent.futures import ProcessPoolExecutor

    for stream in (sys.stdout, sys.stderr):  # a child flushing a copied buffer would repeat it
        stream.flush()
    ctx = multiprocessing.get_context("fork")
    failure: BaseException | None = None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(func, b) for b in bounds]
        for (lo, hi), future in zip(bounds, futures, strict=True):
            try:
                results.extend(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after cleanup
                failure = failure or exc
            if on_chunk and failure is None:
                on_chunk(hi - lo)
    if failure is not None:
        if cleanup:
            cleanup(results)
        raise failure
    return results


def twin_path_source(twin: Path) -> Path:
    """Inverse of `twin_path`."""
    return twin.with_name(twin.stem[: -len(TWIN_MARK)] + twin.suffix)


# --------------------------------------------------------------------------- sealing


def seal_unit(unit: Unit, public_key: RSAPublicKey, opts: TreeOptions, fingerprint: str) -> None:
    """Seal one Secret (kubeseal's seal path) and stamp the digest and fingerprint on it."""
    from sealkit.model import seal_secret

    try:
        sealed = seal_secret(
            unit.secret,
            public_key,
            scope=opts.scope,
            default_namespace=unit.namespace or None,
        )
    except InputError as exc:
        raise InputError(f"{unit.source}:{unit.line}: {exc.message}") from None
    meta = sealed["metadata"]
    annotations = dict(meta.get("annotations") or {})
    annotations[DIGEST_ANNOTATION] = unit.digest
    annotations[CERT_ANNOTATION] = fingerprint
    meta["annotations"] = annotations
    unit.sealed = sealed


def _strip_for_compare(docs: Sequence[Any]) -> Any:
    try:
        return json.loads(json.dumps(list(docs), sort_keys=True, default=str))
    except TypeError:  # non-string keys in a hand-edited twin: never equal, rewrite it
        return object()


def file_needs_write(plan: FilePlan) -> bool:
    """True when the twin is missing or its documents differ from what seal-tree would write.

    Call after sealing (every unit has a document). Compares structure, not bytes, so a twin
    whose formatting a person changed is left alone while its content is right.
    """
    if plan.existing is None or plan.twin_error:
        return True
    docs = plan.render_docs()
    if docs == plan.existing:  # dict equality ignores key order: the common, cheap case
        return False
    return _strip_for_compare(docs) != _strip_for_compare(plan.existing)


def check_file_layout(plan: FilePlan) -> str:
    """For `--check` on a file whose units are all up to date: why its twin would change."""
    if plan.twin_error:
        return plan.twin_error
    if plan.existing is None:
        return "no sealed twin"
    if file_needs_write(plan):
        return "twin has other documents or another order than its source"
    return ""


def render(plan: FilePlan) -> bytes:
    from sealkit.output import dump_all

    return dump_all(plan.render_docs(), plan.fmt).encode("utf-8")


def default_digest_key_path(root: Path, override: str | os.PathLike[str] | None) -> Path:
    return Path(override) if override else root / DEFAULT_DIGEST_KEY

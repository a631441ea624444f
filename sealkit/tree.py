"""`sealkit seal-tree`: seal every plaintext Secret of a GitOps tree in one process.

Naming rule
-----------
Each source file that holds at least one plaintext Secret (`sealkit.scan` decides what that is)
gets ONE twin beside it: ``foo.yaml`` → ``foo.sealed.yaml``, ``foo.yml`` → ``foo.sealed.yml``,
``foo.json`` → ``foo.sealed.json`` (JSON in, JSON out, in kubeseal's JSON shape). The twin holds
one SealedSecret per sealable Secret, in source order; a `kind: List` becomes a List of
SealedSecrets (same apiVersion). Other documents (Deployments, empty Secrets, SealedSecrets) are
not copied. Files named ``*.sealed.{yaml,yml,json}`` are twins and are never read as sources.
With a clusters file (`sealkit.clusters`, one `Target` per cluster) each source gets one twin
per cluster instead: ``foo.<cluster>.sealed.yaml`` beside it, or ``<dir>/…/foo.sealed.yaml``.

Streamed
--------
`run_tree` walks lazily and hands files to forked workers in small chunks with a bounded number
in flight (`sealkit.forkpool.imap_chunks`); the parent keeps counters and journals the staged
twins on disk (`sealkit.staging`), so memory stays flat however big the tree is.

Up to date, without the private key
-----------------------------------
Each sealed document carries, in its *outer* metadata, a keyed digest of its source and the
certificate's fingerprint (`sealkit.digests` explains the digest key and the threat model). Worker
processes come from `sealkit.forkpool`.

A twin document is up to date iff it is a SealedSecret with the source's namespace and name,
its encryptedData keys are the source's keys, its digest equals the recomputed one, and (when a
certificate is known: always when sealing, with ``--cert`` under ``--check``) its fingerprint is
the certificate's. Sealing reuses up-to-date documents untouched and rewrites a twin only when
its content changes, so re-running seal-tree produces no Git noise (upstream pain point #515).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError
from sealkit.digests import (
    DigestKey,
    default_digest_key_path,
    load_or_create_digest_key,
    new_digest_key,
    save_digest_key,
    source_digest,
)
from sealkit.model import is_sealed_secret, is_secret, secret_values
from sealkit.scan import (
    MANIFEST_SUFFIXES,
    IgnoreRules,
    discover_files,
    has_values,
    read_documents,
    read_file_text,
)
from sealkit.scopes import Scope, scope_of, with_scope_annotations
from sealkit.staging import Staged, StagingJournal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [  # the digest names are re-exported from sealkit.digests for seal-tree's callers
    "CERT_ANNOTATION",
    "DIGEST_ANNOTATION",
    "DigestKey",
    "DocEntry",
    "FileResult",
    "ListEntry",
    "TreeOptions",
    "Target",
    "TreeRun",
    "default_digest_key_path",
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


# --------------------------------------------------------------------------- naming


def twin_path(source: Path) -> Path:
    """``dir/foo.yaml`` → ``dir/foo.sealed.yaml`` (same suffix, so JSON stays JSON)."""
    return source.with_name(f"{source.stem}{TWIN_MARK}{source.suffix}")


def is_twin_path(path: Path) -> bool:
    return path.suffix in MANIFEST_SUFFIXES and path.stem.endswith(TWIN_MARK)


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


@dataclass(frozen=True)
class DocEntry:
    """A twin document that is one SealedSecret."""

    unit: Unit

    @property
    def units(self) -> list[Unit]:
        return [self.unit]

    def render(self) -> Any:
        return self.unit.sealed


@dataclass(frozen=True)
class ListEntry:
    """A twin ``kind: List`` of SealedSecrets, for a source ``kind: List`` of Secrets."""

    api_version: str
    units: list[Unit]

    def render(self) -> Any:
        from sealkit.output import kube_order

        items = [kube_order(u.sealed or {}) for u in self.units]
        return {"apiVersion": self.api_version, "kind": "List", "items": items}


TwinEntry = DocEntry | ListEntry


@dataclass
class FilePlan:
    source: Path
    twin: Path
    fmt: str  # "yaml" | "json"
    layout: list[TwinEntry] = field(default_factory=list)
    existing: list[Any] | None = None  # parsed twin documents, None if no twin file
    twin_error: str = ""

    @property
    def units(self) -> list[Unit]:
        return [unit for entry in self.layout for unit in entry.units]

    def render_docs(self) -> list[Any]:
        return [entry.render() for entry in self.layout]


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
            opts.default_namespace() if callable(opts.default_namespace) else opts.default_namespace
        )
        namespace = fallback or ""
        if not namespace:
            raise InputError("secret must declare a namespace")
    return namespace, name, scope


def _source_units(path: Path, text: str, opts: TreeOptions) -> list[TwinEntry]:
    layout: list[TwinEntry] = []

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
            layout.append(DocEntry(unit(obj, doc.line)))
        elif isinstance(obj, dict) and obj.get("kind") == "List":
            raw_items = obj.get("items")
            items = raw_items if isinstance(raw_items, list) else []
            units = [
                unit(item, doc.item_lines[i] if i < len(doc.item_lines) else doc.line)
                for i, item in enumerate(items)
                if _sealable(item)
            ]
            if units:
                layout.append(ListEntry(str(obj.get("apiVersion") or "v1"), units))
    return layout


def _sealable(obj: Any) -> bool:
    return is_secret(obj) and has_values(obj)


def _twin_index(docs: Sequence[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items or []:
            if isinstance(item, dict) and is_sealed_secret(item):
                meta = item.get("metadata") or {}
                key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
                index.setdefault(key, item)
    return index


def _staleness(unit: Unit, twin: dict[str, Any] | None, fingerprint: str | None) -> str:
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


def _plan_twin(
    path: Path,
    layout: list[TwinEntry],
    twin: Path,
    key: DigestKey | None,
    fingerprint: str | None,
) -> FilePlan | FileOutcome:
    """The plan for one source's twin (per target), or an error outcome."""
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
            unit.digest = source_digest(unit.secret, (unit.namespace, unit.name, unit.scope), key)
        except InputError as exc:
            return FileOutcome(error=f"{unit.source}:{unit.line}: {exc.message}")
        found = index.get((unit.namespace, unit.name))
        unit.reason = _staleness(unit, found, fingerprint)
        if not unit.reason:
            unit.sealed = found
    return plan


@dataclass(frozen=True)
class Target:
    """One set of twins: the plain ``foo.sealed.yaml`` beside each source, or one cluster's.

    A cluster's twins are ``foo.<cluster>.sealed.yaml`` beside the source, or, with ``out_dir``,
    ``<out_dir>/<path in the tree>/foo.sealed.yaml``. ``public_key`` None means `--check`.
    """

    name: str = ""
    public_key: RSAPublicKey | None = None
    fingerprint: str | None = None
    out_dir: Path | None = None

    def twin(self, root: Path, source: Path) -> Path:
        if self.out_dir is not None:
            return twin_path(self.out_dir / source.relative_to(root))
        if self.name:
            return source.with_name(f"{source.stem}.{self.name}{TWIN_MARK}{source.suffix}")
        return twin_path(source)

    def source_of(self, twin: Path) -> Path | None:
        """The source a twin beside it belongs to, or None when it is not this target's."""
        if self.out_dir is not None:
            return None
        if not self.name:
            return twin_path_source(twin)
        mark = f".{self.name}{TWIN_MARK}"
        if not twin.stem.endswith(mark):
            return None
        return twin.with_name(twin.stem[: -len(mark)] + twin.suffix)


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
    created_dirs: tuple[Path, ...] = ()  # seal mode: directories made for the staged twin
    layout_problem: str = ""  # check mode: why the twin would change although units are fresh
    target: str = ""  # the cluster's name ("" = the plain twin)


@dataclass(frozen=True)
class FileOutcome:
    """What one source file gave a worker: a result, an error line, or an orphan twin."""

    result: FileResult | None = None
    error: str | None = None
    orphan: Path | None = None


# Errors and orphan warnings kept for the report; beyond these only the count grows, so a tree
# that is broken everywhere still costs bounded memory.
MAX_REPORTED = 200


@dataclass
class TreeRun:
    """Counters and the staging journal of one run; per-file results are streamed, not kept."""

    staged: StagingJournal = field(default_factory=StagingJournal)
    files: int = 0  # source files holding at least one plaintext Secret
    secrets: int = 0
    sealed: int = 0
    errors: list[str] = field(default_factory=list)  # the first MAX_REPORTED
    error_count: int = 0
    orphans: list[Path] = field(default_factory=list)  # twins whose source has no Secret left
    orphan_count: int = 0

    def add_error(self, error: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(error)

    def add_orphan(self, orphan: Path) -> None:
        self.orphan_count += 1
        if len(self.orphans) < MAX_REPORTED:
            self.orphans.append(orphan)


def run_tree(
    root: Path,
    opts: TreeOptions,
    *,
    key: DigestKey | None,
    fingerprint: str | None = None,
    public_key: RSAPublicKey | None = None,
    targets: Sequence[Target] | None = None,
    force: bool = False,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    _min_per_worker: int | None = None,
    _max_in_flight: int | None = None,
) -> TreeRun:
    """Plan every file and, with public keys, seal and stage the changed twins. No renames.

    ``targets`` are the twin sets (default: one plain target from ``public_key`` and
    ``fingerprint``); without public keys this is `--check`: staleness only, each file's result
    handed to ``on_result`` as it arrives. When sealing, each changed twin is written to a hidden
    temp file beside it and journaled in ``run.staged``; the caller then commits the journal
    (rename them all) if ``run.error_count`` is 0, else discards it: a bad input anywhere never
    leaves some twins written and others not. Streamed: the walk is lazy, files go to forked
    workers (`sealkit.forkpool`, ``jobs`` > 1) in small chunks with a bounded number in flight,
    and the parent keeps counters, not results, so memory does not grow with the tree.
    ``key`` None (no digest key yet) makes every twin stale. ``progress(done, total)`` counts
    source files (its total costs one extra walk of names). ``_min_per_worker`` and
    ``_max_in_flight`` are test-only knobs.
    """
    from sealkit.forkpool import imap_chunks

    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    if targets is None:
        targets = [Target("", public_key, fingerprint)]
    ignore = IgnoreRules.load(opts.exclude, root=root)
    skip = tuple(os.path.abspath(t.out_dir) + os.sep for t in targets if t.out_dir is not None)
    run = TreeRun()

    def sources() -> Iterator[Path]:
        for path in discover_files([root], ignore=ignore):
            if skip and os.path.abspath(path).startswith(skip):
                continue  # a cluster's output tree inside the source tree
            if is_twin_path(path):
                if _is_orphan(path, targets):
                    run.add_orphan(path)
                continue
            yield path

    total = 0
    if progress:  # a second walk of names only: streaming means not keeping the first
        total = sum(1 for p in discover_files([root], ignore=ignore) if not is_twin_path(p))
    state = _RunState(opts, key, tuple(targets), force, root)
    done = 0
    try:
        for chunk in imap_chunks(
            _run_files,
            state,
            sources(),
            jobs=jobs,
            max_in_flight=_max_in_flight,
            min_per_worker=_min_per_worker,
            cleanup=_discard_chunk,
        ):
            outcomes = [o for per_file in chunk for o in per_file]
            for outcome in outcomes:  # journal first: from here on the run owns the staged files
                result = outcome.result
                if result is not None and result.staged is not None:
                    run.staged.add(
                        Staged(result.staged, result.twin, len(result.units), result.created_dirs)
                    )
            for outcome in outcomes:
                _account(run, outcome, on_result)
            done += len(chunk)
            if progress:
                progress(min(done, total), total)
    except BaseException:
        run.staged.discard()
        raise
    return run


def _is_orphan(twin: Path, targets: Sequence[Target]) -> bool:
    claimed = [s for s in (t.source_of(twin) for t in targets) if s is not None]
    return bool(claimed) and not any(s.exists() for s in claimed)


def _account(
    run: TreeRun, outcome: FileOutcome, on_result: Callable[[FileResult], None] | None
) -> None:
    if outcome.error is not None:
        run.add_error(outcome.error)
    if outcome.orphan is not None:
        run.add_orphan(outcome.orphan)
    result = outcome.result
    if result is None:
        return
    run.files += 1
    run.secrets += len(result.units)
    run.sealed += result.sealed
    if on_result:
        on_result(result)


@dataclass(frozen=True)
class _RunState:
    """What every worker needs; forked children inherit it (keys and callables do not pickle)."""

    opts: TreeOptions
    key: DigestKey | None
    targets: tuple[Target, ...]
    force: bool
    root: Path


def _discard_chunk(chunk: list[list[FileOutcome]]) -> None:
    """Remove what a chunk staged (a chunk that was never handed to the journal)."""
    _discard_outcomes([o for per_file in chunk for o in per_file])


def _discard_outcomes(outcomes: list[FileOutcome]) -> None:
    journal = StagingJournal()
    for outcome in outcomes:
        result = outcome.result
        if result is not None and result.staged is not None:
            journal.add(Staged(result.staged, result.twin, 0, result.created_dirs))
    journal.discard()


def _run_files(state: _RunState, paths: list[Path]) -> list[list[FileOutcome]]:
    """Worker body: plan (and seal, render, stage) one chunk of source files, every target."""
    out: list[list[FileOutcome]] = []
    try:
        for path in paths:
            out.append(_run_file(state, path))
    except BaseException:
        _discard_chunk(out)
        raise
    return out


def _run_file(state: _RunState, path: Path) -> list[FileOutcome]:
    try:
        text = read_file_text(path)
        if "Secret" not in text:
            layouts = None
        else:
            layouts = [_source_units(path, text, state.opts) for _ in state.targets]
    except InputError as exc:
        return [FileOutcome(error=exc.message)]
    out: list[FileOutcome] = []
    for i, target in enumerate(state.targets):
        twin = target.twin(state.root, path)
        if not layouts or not layouts[i]:
            out.append(FileOutcome(orphan=twin if twin.exists() else None))
            continue
        outcome = _run_target(state, target, path, layouts[i], twin)
        if outcome.error is not None:
            _discard_outcomes(out)  # one error per file; drop its other targets' twins
            return [outcome]
        out.append(outcome)
    return out


def _run_target(
    state: _RunState, target: Target, path: Path, layout: list[TwinEntry], twin: Path
) -> FileOutcome:
    plan = _plan_twin(path, layout, twin, state.key, target.fingerprint)
    if isinstance(plan, FileOutcome):
        return plan
    if state.force:
        for unit in plan.units:
            unit.reason = unit.reason or "forced"
    result = FileResult(
        plan.source,
        plan.twin,
        [UnitResult(u.line, u.ref, u.reason) for u in plan.units],
        target=target.name,
    )
    if target.public_key is None:
        if not any(u.reason for u in plan.units):
            result.layout_problem = check_file_layout(plan)
        return FileOutcome(result)
    try:
        stale = [u for u in plan.units if u.reason]
        for unit in stale:
            seal_unit(unit, target.public_key, state.opts, target.fingerprint or "")
    except InputError as exc:
        return FileOutcome(error=exc.message)
    result.sealed = len(stale)
    if file_needs_write(plan):
        from sealkit.files import write_temp

        result.created_dirs = _make_parents(plan.twin.parent)
        # Staged, not renamed: the parent commits only if every file succeeded.
        # No fsync per twin: derived files; a torn one is just stale to --check.
        result.staged = write_temp(plan.twin, render(plan), fsync=False)
    return FileOutcome(result)


def _make_parents(directory: Path) -> tuple[Path, ...]:
    """mkdir -p, returning the directories it created (so a discarded run removes them)."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    created: list[Path] = []
    for d in reversed(missing):
        try:
            d.mkdir()
            created.append(d)
        except FileExistsError:  # another worker made it: theirs to remove
            pass
    return tuple(created)


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
    return bool(_strip_for_compare(docs) != _strip_for_compare(plan.existing))


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

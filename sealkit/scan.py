"""Find plaintext Secrets before they reach Git (`sealkit scan` and the pre-commit hook).

A *plaintext Secret* is a document (or an item of a `kind: List` or of a bare top-level
sequence) with `kind: Secret` and a non-empty `data` or `stringData` mapping. SealedSecrets,
Secrets without values and allow-listed paths pass.
Findings name the file, the line where the document starts and `<namespace>/<name>`; they never
carry a value, and neither do parse errors (PyYAML's snippet of the offending line is dropped,
only its one-line *problem* is kept).

The same reading code serves `sealkit seal-tree` (`read_documents`, `iter_manifests`,
`discover_files`, `IgnoreRules`), so both commands agree on what a manifest file is:

- `*.yaml`, `*.yml` and `*.json` files; a directory is walked recursively, skipping
  `node_modules` and hidden directories for seal-tree; the scan walks hidden directories too
  (a `.secrets/` folder is committed like any other), except VCS metadata and tool caches
  (`SCAN_SKIP_HIDDEN`);
- a file whose text never mentions `Secret` (nor `secretGenerator`, nor an escape sequence
  that could spell it) is not parsed at all, which makes big trees cheap;
- a file with Go-template actions (`{{ ... }}`: a Helm chart's `templates/`) is a template,
  not YAML: it passes with a warning that it was not checked;
- kustomize `secretGenerator` entries with `literals` are plaintext in Git (findings); entries
  that read `files`/`envs` get a warning (those files are not manifests and are not read);
- OpenShift `Template` objects are expanded like `kind: List`; a Secret there whose values are
  all `${PARAMETER}` references holds no plaintext and passes;
- YAML may hold many documents; JSON files may hold one value or several concatenated objects
  (kubeseal's own JSON output shape).

Allow-listing (`IgnoreRules`): patterns from `--allow PATTERN` and from a `.sealkitignore` file
(one pattern a line, `#` comments) are matched against the path relative to the current
directory, with `/` separators:

- a pattern without `/` matches the file name or any one directory name (`fixtures` allows
  everything under any `fixtures/` directory; `*.example.yaml` allows those files anywhere);
- a pattern with `/` matches the whole relative path (a leading `/` is ignored, a trailing `/`
  allows a directory and everything below it); `*` also crosses `/` (fnmatch rules).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealkit._exceptions import InputError

__all__ = [
    "MANIFEST_SUFFIXES",
    "Document",
    "Finding",
    "IgnoreRules",
    "ScanResult",
    "discover_files",
    "has_values",
    "iter_manifests",
    "read_documents",
    "scan_paths",
    "scan_text",
    "to_json",
    "to_sarif",
]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
IGNORE_FILE = ".sealkitignore"
_SKIP_DIRS = frozenset({"node_modules", "__pycache__"})
# Hidden directories the scan still skips: VCS metadata and tool caches, never manifests.
SCAN_SKIP_HIDDEN = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        ".terraform",
        ".sealkit",
        ".devstack",
    }
)
_TEMPLATE_ACTION = re.compile(r"\{\{.*?\}\}", re.S)
_PARAMETER = re.compile(r"^\$\{\{?[A-Za-z0-9_]+\}?\}$")
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

try:  # libyaml is ~10x faster; the pure-Python loader gives the same nodes and marks.
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Document:
    """One parsed document and the 1-based line where its content starts."""

    obj: Any
    line: int
    item_lines: tuple[int, ...] = ()  # for `kind: List`: the line of each item, when known


@dataclass(frozen=True)
class Finding:
    """A plaintext Secret: where it is and what it is called. Never its values."""

    path: str
    line: int
    namespace: str
    name: str

    what: str = "plaintext Secret"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} {self.namespace}/{self.name}"


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: message", one line each
    warnings: list[str] = field(default_factory=list)  # "file:line: message": not checked
    files_scanned: int = 0

    @property
    def exit_code(self) -> int:
        """1 if a plaintext Secret was found, else 2 if a file could not be read, else 0."""
        if self.findings:
            return 1
        return 2 if self.errors else 0


# --------------------------------------------------------------------------- reading


def _is_json(path: str, text: str) -> bool:
    if path.endswith(".json"):
        return True
    stripped = text.lstrip()
    return stripped.startswith(("{", "["))


def _yaml_documents(text: str, path: str) -> list[Document]:
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document (`---` alone)
                continue
            obj = loader.construct_document(node)
            item_lines: tuple[int, ...] = ()
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == "items" and isinstance(value, yaml.SequenceNode):
                        item_lines = tuple(n.start_mark.line + 1 for n in value.value)
            elif isinstance(node, yaml.SequenceNode):
                item_lines = tuple(n.start_mark.line + 1 for n in node.value)
            docs.append(Document(obj, node.start_mark.line + 1, item_lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        # Only `problem` (e.g. "mapping values are not allowed here"): str(exc) would quote
        # the offending line, which may hold a secret value.
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise InputError(f"{path}:{line}: malformed YAML: {problem}") from None
    finally:
        loader.dispose()
    return docs


def _json_documents(text: str, path: str) -> list[Document]:
    decoder = json.JSONDecoder()
    docs: list[Document] = []
    idx, end = 0, len(text)
    while True:
        while idx < end and text[idx] in " \t\r\n":
            idx += 1
        if idx >= end:
            return docs
        try:
            obj, next_idx = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
        docs.append(Document(obj, text.count("\n", 0, idx) + 1))
        idx = next_idx


def read_documents(text: str, path: str) -> list[Document]:
    """Parse a manifest file's text: YAML stream, or JSON value(s). Raises one-line InputError.

    JSON is read through the YAML loader first (JSON is YAML, and that gives a line for every
    `kind: List` item); the strict JSON parser is the fallback and the source of error lines.
    """
    if _is_json(path, text):
        try:
            return _yaml_documents(text, path)
        except InputError:
            return _json_documents(text, path)
    return _yaml_documents(text, path)


def read_file_text(path: str | os.PathLike[str]) -> str:
    """Read a manifest as UTF-8 text (BOM tolerated); one-line InputError otherwise."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text") from None


# --------------------------------------------------------------------------- classifying


def iter_manifests(doc: Document) -> Iterator[tuple[Any, int]]:
    """Yield `(object, line)` for a document, expanding `kind: List` into its items.

    A bare top-level sequence of manifests is expanded the same way: kubectl would not apply
    it, but a Secret inside it is still plaintext in Git.
    """
    obj = doc.obj
    items = None
    if isinstance(obj, dict) and obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        items = obj["items"]
    elif isinstance(obj, list):
        items = obj
    if items is not None:
        for i, item in enumerate(items):
            line = doc.item_lines[i] if i < len(doc.item_lines) else doc.line
            yield item, line
    else:
        yield obj, doc.line


def is_secret(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("kind") == "Secret"


def has_values(secret: dict[str, Any]) -> bool:
    """True when `data` or `stringData` holds at least one entry."""
    return any(bool(secret.get(k)) for k in ("data", "stringData"))


def _meta_str(obj: dict[str, Any], key: str) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    value = meta.get(key)
    if value in (None, "") and key == "name" and meta.get("generateName"):
        return f"{meta['generateName']}*"
    if value in (None, ""):
        return "<unset>"
    return str(value) if isinstance(value, str | int) else "<invalid>"


def _worth_parsing(text: str) -> bool:
    return (
        "Secret" in text
        or "secretGenerator" in text
        or "\\u" in text
        or "\\x" in text
        or "\\U" in text
    )


def is_template(text: str) -> bool:
    """Go-template actions (Helm): the file is not YAML until rendered."""
    return "{{" in text and _TEMPLATE_ACTION.search(text) is not None


def _only_parameters(secret: dict[str, Any]) -> bool:
    """An OpenShift Template's Secret whose values are all ``${PARAM}`` references."""
    values = [
        v
        for k in ("data", "stringData")
        if isinstance(secret.get(k), dict)
        for v in secret[k].values()
    ]
    return bool(values) and all(isinstance(v, str) and _PARAMETER.match(v.strip()) for v in values)


def _generator_entries(obj: Any, path: str) -> Iterator[dict[str, Any]]:
    is_kustomization = isinstance(obj, dict) and (
        obj.get("kind") in ("Kustomization", "Component")
        or os.path.basename(path) in _KUSTOMIZATION_NAMES
    )
    if is_kustomization and isinstance(obj.get("secretGenerator"), list):
        yield from (e for e in obj["secretGenerator"] if isinstance(e, dict))


def scan_text(text: str, path: str, warnings: list[str] | None = None) -> list[Finding]:
    """Findings for one file's text. Raises InputError (one line, `path:line:`) if malformed.

    Notes for files that pass unchecked (templates, generator files) go to ``warnings``.
    """
    if not _worth_parsing(text):
        return []
    notes = warnings if warnings is not None else []
    if is_template(text):
        notes.append(f"{path}:1: template ({{{{ }}}} actions): not checked")
        return []
    findings = []
    for doc in read_documents(text, path):
        for gen in _generator_entries(doc.obj, path):
            name = str(gen.get("name") or "<unset>")
            namespace = str(gen.get("namespace") or "<unset>")
            if gen.get("literals"):
                findings.append(
                    Finding(path, doc.line, namespace, name, "plaintext secretGenerator literals")
                )
            if gen.get("files") or gen.get("envs"):
                notes.append(
                    f"{path}:{doc.line}: secretGenerator {name} reads files or envs: not checked"
                )
        for obj, line in iter_manifests(doc):
            if (
                isinstance(obj, dict)
                and obj.get("kind") == "Template"
                and isinstance(obj.get("objects"), list)
            ):
                objects = [(o, line) for o in obj["objects"]]
            else:
                objects = [(obj, line)]
            for item, item_line in objects:
                if (
                    is_secret(item)
                    and has_values(item)
                    and not (objects[0][0] is not obj and _only_parameters(item))
                ):
                    findings.append(
                        Finding(
                            path, item_line, _meta_str(item, "namespace"), _meta_str(item, "name")
                        )
                    )
    return findings


# --------------------------------------------------------------------------- paths


class IgnoreRules:
    """Allow-list patterns (see the module docstring for the matching rules)."""

    def __init__(self, patterns: Iterable[str] = (), *, root: str | os.PathLike[str] = ".") -> None:
        self.root = Path(root).resolve()
        self.patterns = [p.strip() for p in patterns if p.strip()]

    @classmethod
    def load(
        cls,
        patterns: Iterable[str] = (),
        *,
        ignore_file: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] = ".",
    ) -> IgnoreRules:
        """Patterns plus those of `ignore_file` (default `<root>/.sealkitignore`, if present)."""
        all_patterns = list(patterns)
        path = Path(ignore_file) if ignore_file is not None else Path(root) / IGNORE_FILE
        if ignore_file is not None or path.is_file():
            text = read_file_text(path)
            for raw in text.splitlines():
                line = raw.strip()
                if line and not line.startswith("#"):
                    all_patterns.append(line)
        return cls(all_patterns, root=root)

    def _relative(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(self.root)
            except ValueError:
                pass
        rel = p.as_posix()
        while rel.startswith("./"):
            rel = rel[2:]
        return rel

    def matches(self, path: str | os.PathLike[str]) -> bool:
        if not self.patterns:
            return False
        rel = self._relative(path)
        parts = rel.split("/")
        for pattern in self.patterns:
            if "/" not in pattern:
                if any(fnmatch.fnmatchcase(part, pattern) for part in parts):
                    return True
                continue
            pat = pattern.lstrip("/")
            if pat.endswith("/"):
                if rel.startswith(pat) or fnmatch.fnmatchcase(rel, pat + "*"):
                    return True
            elif fnmatch.fnmatchcase(rel, pat):
                return True
        return False


def discover_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    ignore: IgnoreRules | None = None,
    hidden: bool = False,
) -> Iterator[Path]:
    """Manifest files under `paths`, in a stable (sorted) order.

    Files named explicitly are taken whatever their suffix (pre-commit passes exactly the
    staged files); directories are walked for `MANIFEST_SUFFIXES`. Missing paths raise.
    """
    for raw in paths:
        p = Path(raw)
        if ignore is not None and ignore.matches(p):
            continue
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if d not in _SKIP_DIRS
                    and (d not in SCAN_SKIP_HIDDEN if hidden else not d.startswith("."))
                )
                base = Path(dirpath)
                if ignore is not None:
                    dirnames[:] = [d for d in dirnames if not ignore.matches(base / d)]
                for name in sorted(filenames):
                    if not name.endswith(MANIFEST_SUFFIXES):
                        continue
                    f = base / name
                    if ignore is None or not ignore.matches(f):
                        yield f
        elif p.exists():
            yield p
        else:
            raise InputError(f"{p}: no such file or directory")


def scan_paths(
    paths: Iterable[str | os.PathLike[str]], *, ignore: IgnoreRules | None = None
) -> ScanResult:
    """Scan files and directories; collects every finding and every unreadable file."""
    result = ScanResult()
    for path_obj in _safe_discover(paths, ignore, result):
        path = str(path_obj)
        result.files_scanned += 1
        try:
            result.findings.extend(scan_text(read_file_text(path_obj), path, result.warnings))
        except InputError as exc:
            result.errors.append(str(exc))
    return result


def _safe_discover(
    paths: Iterable[str | os.PathLike[str]], ignore: IgnoreRules | None, result: ScanResult
) -> Iterator[Path]:
    for raw in paths:
        try:
            yield from discover_files([raw], ignore=ignore, hidden=True)
        except InputError as exc:
            result.errors.append(str(exc))


# --------------------------------------------------------------------------- reports


def _where(message: str) -> tuple[str, int, str]:
    """Split ``file:line: text`` (the shape of every error and warning)."""
    match = re.match(r"^(.*?):(\d+): (.*)$", message)
    if not match:
        return "", 0, message
    return match.group(1), int(match.group(2)), match.group(3)


def to_json(result: ScanResult) -> dict[str, Any]:
    """The result as one JSON object; findings carry names only, never values."""
    return {
        "findings": [
            {
                "path": f.path,
                "line": f.line,
                "kind": f.what,
                "namespace": f.namespace,
                "name": f.name,
            }
            for f in result.findings
        ],
        "errors": [
            dict(zip(("path", "line", "message"), _where(e), strict=True)) for e in result.errors
        ],
        "warnings": [
            dict(zip(("path", "line", "message"), _where(w), strict=True)) for w in result.warnings
        ],
        "filesScanned": result.files_scanned,
        "exitCode": result.exit_code,
    }


def to_sarif(result: ScanResult) -> dict[str, Any]:
    """A SARIF 2.1.0 log (GitHub code scanning and most CI dashboards read it)."""

    def location(path: str, line: int) -> dict[str, Any]:
        return {
            "physicalLocation": {
                "artifactLocation": {"uri": path.replace(os.sep, "/")},
                "region": {"startLine": max(line, 1)},
            }
        }

    results = [
        {
            "ruleId": "plaintext-secret",
            "level": "error",
            "message": {"text": f"{f.what} {f.namespace}/{f.name}"},
            "locations": [location(f.path, f.line)],
        }
        for f in result.findings
    ]
    for level, rule, items in (
        ("error", "unreadable", result.errors),
        ("warning", "not-checked", result.warnings),
    ):
        for item in items:
            path, line, text = _where(item)
            entry: dict[str, Any] = {"ruleId": rule, "level": level, "message": {"text": text}}
            if path:
                entry["locations"] = [location(path, line)]
            results.append(entry)
    rules = [
        {
            "id": "plaintext-secret",
            "shortDescription": {
                "text": "A Kubernetes Secret (or generator literal) with plaintext values"
            },
        },
        {"id": "unreadable", "shortDescription": {"text": "A manifest that cannot be parsed"}},
        {
            "id": "not-checked",
            "shortDescription": {"text": "A template or generator input the scan does not check"},
        },
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "sealkit scan", "rules": rules}}, "results": results}
        ],
    }

"""Build and drive the Go text/template + Sprig oracle (tests/controller/goracle/main.go).

The oracle is the real Go renderer that upstream uses, built from the Go module proxy into
`~/.cache/sealkit/gotmpl-oracle`. Tests that need it skip when Go or the proxy is unavailable.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

SRC = Path(__file__).parent / "goracle"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sealkit" / "gotmpl-oracle"


def oracle_path() -> Path | None:
    binary = CACHE / "oracle"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("main.go", "go.mod", "go.sum"):
        shutil.copy(SRC / name, CACHE / name)
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
    res = subprocess.run(
        ["go", "build", "-o", "oracle", "."], cwd=CACHE, env=env, capture_output=True, timeout=600
    )
    return binary if res.returncode == 0 and binary.exists() else None


def go_render(binary: Path, cases: list[tuple[str, dict[str, bytes]]]) -> list[tuple[str, bytes]]:
    """Render each (template, data) in Go; return ("ok", output) or ("err", message)."""
    lines = [
        json.dumps({"t": t, "d": {k: base64.b64encode(v).decode() for k, v in d.items()}})
        for t, d in cases
    ]
    res = subprocess.run(
        [str(binary)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = []
    for line in res.stdout.splitlines():
        obj = json.loads(line)
        if "ok" in obj:
            out.append(("ok", base64.b64decode(obj["ok"])))
        else:
            out.append(("err", obj["err"].encode()))
    return out

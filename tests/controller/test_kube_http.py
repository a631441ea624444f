"""`controller.kube_http`: the controller's own apiserver transport (issue 17).

Against the stack's real apiserver: errors keep their status and Status message, a watch
streams events line by line, and the controller's run-time modules never import the official
client (its import alone cost ~1.5 s and ~40 MB per start).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest

from controller.informer import RawListWatch
from controller.kube_gateway import ApiError, RealKubeGateway, secret_path
from controller.kube_http import KubeHttp, iter_lines
from sealkit import ClusterError


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        return iter(self.chunks)


def test_iter_lines_joins_chunks_split_mid_line() -> None:
    resp = _Chunks([b'{"a":', b'1}\n{"b"', b":2}\n\n", b'{"c":3}'])
    assert list(iter_lines(resp)) == [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']


def test_in_cluster_without_a_cluster_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="KUBERNETES_SERVICE_HOST"):
        KubeHttp.in_cluster()


def test_run_time_modules_do_not_import_the_official_client() -> None:
    code = (
        "import sys\n"
        "from controller.main import App, main\n"
        "import controller.executor, controller.http_api, controller.informer\n"
        "import controller.key_manager, controller.kube_gateway, controller.kube_http\n"
        "import controller.leader, controller.metrics, controller.runner\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.stack
def test_errors_and_watch_on_the_real_apiserver(stack: Any) -> None:
    gw = RealKubeGateway(KubeHttp.from_kubeconfig(stack.kubeconfig), qps=0)
    missing = f"no-such-{uuid.uuid4().hex[:8]}"
    assert gw.get_secret("default", missing) is None
    with pytest.raises(ApiError) as err:
        gw.request("GET", f"/api/v1/namespaces/{missing}")
    assert err.value.status == 404 and "not found" in err.value.message

    ns = f"kubehttp-{uuid.uuid4().hex[:8]}"
    gw.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    try:
        lw = RawListWatch(gw, secret_path(ns))
        rv = lw.list(limit=10, continue_=None)["metadata"]["resourceVersion"]
        seen: list[dict[str, Any]] = []

        def watch() -> None:
            for event in lw.watch(resource_version=rv, timeout_seconds=20):
                if event.get("type") == "ADDED":
                    seen.append(event)
                    lw.abort()
                    return

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        body = {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
        gw.create_secret(ns, body)
        with pytest.raises(ApiError) as conflict:
            gw.create_secret(ns, body)
        assert conflict.value.status == 409 and conflict.value.reason == "AlreadyExists"
        thread.join(30)
        assert [e["object"]["metadata"]["name"] for e in seen] == ["s"]
    finally:
        gw.request("DELETE", f"/api/v1/namespaces/{ns}")

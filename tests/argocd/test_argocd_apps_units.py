"""Pure parts of the Argo CD gateway: the repoURL overlay and reading `.status`."""

from __future__ import annotations

from pathlib import Path

import yaml

from devstack.argocd_apps import retarget, summary

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "welcome-message-gitops" / "gitops"


def test_retarget_points_the_committed_applications_at_the_stack_repo() -> None:
    for path in sorted(EXAMPLE.glob("*.yaml")):
        app = yaml.safe_load(path.read_text())
        before = yaml.safe_dump(app)
        out = retarget(app, "http://127.0.0.1:1/sealkit.git", "abc", namespace="ns1")
        assert out["spec"]["source"]["repoURL"] == "http://127.0.0.1:1/sealkit.git"
        assert out["spec"]["source"]["targetRevision"] == "abc"
        assert out["spec"]["destination"]["namespace"] == "ns1"
        assert out["spec"]["source"]["path"] == app["spec"]["source"]["path"]
        assert yaml.safe_dump(app) == before  # the committed document is not touched
        assert app["spec"]["source"]["repoURL"].startswith("https://git.example.com/")


def test_summary_reads_what_argocd_wrote() -> None:
    app = {
        "metadata": {"name": "a"},
        "status": {
            "sync": {"status": "Synced", "revision": "r1"},
            "health": {"status": "Degraded"},
            "operationState": {"phase": "Failed", "message": "one or more objects failed"},
            "resources": [
                {
                    "kind": "SealedSecret",
                    "name": "s",
                    "status": "Synced",
                    "health": {"status": "Degraded", "message": "no key"},
                }
            ],
        },
    }
    st = summary(app)
    assert (st.sync, st.health, st.revision, st.operation) == ("Synced", "Degraded", "r1", "Failed")
    assert st.resource("SealedSecret", "s")["health"]["message"] == "no key"
    assert st.resource("Secret", "s") is None
    assert summary({"metadata": {"name": "b"}}).sync == "Unknown"

"""The three controller differences upstream's integration suite found (issue 11), as pure
planner/executor checks; the suite itself runs in tests/node/test_node_upstream_suite.py."""

from __future__ import annotations

import subprocess
import sys

from _keys import entries
from test_reconcile import make_reconciler, sealed_obj

from controller.keyring import KeyRing
from controller.kube_gateway import ApiError
from controller.reconcile import ANNOTATION_MANAGED, ANNOTATION_SKIP_OWNER_REFS, plan_reconcile
from controller.testing import FakeKubeGateway


def _existing(annotations: dict[str, str]) -> dict:
    return {
        "metadata": {"name": "db", "namespace": "app", "annotations": annotations},
        "data": {"stale": "eA=="},
        "type": "Opaque",
    }


def test_takeover_drops_the_managed_annotation_as_upstream() -> None:
    plan = plan_reconcile(sealed_obj(), _existing({ANNOTATION_MANAGED: "true"}), entries(1))
    assert plan.secret_action == "update"
    assert "annotations" not in plan.secret["metadata"]
    assert plan.secret["metadata"]["ownerReferences"][0]["uid"] == "uid-db"


def test_managed_is_kept_without_an_owner_reference() -> None:
    sealed = sealed_obj(annotations={ANNOTATION_SKIP_OWNER_REFS: "true"})
    plan = plan_reconcile(sealed, _existing({ANNOTATION_MANAGED: "true"}), entries(1))
    assert plan.secret["metadata"]["annotations"][ANNOTATION_MANAGED] == "true"
    assert "ownerReferences" not in plan.secret["metadata"]


def test_immutable_update_event_uses_upstreams_message() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj())
    rec = make_reconciler(gw, ring)
    rec.reconcile("app/db")
    gw.put_sealed(sealed_obj(values={"password": "changed"}))
    gw.fail_next["replace"] = ApiError(
        'Secret "db" is invalid: data: Forbidden: field is immutable when `immutable` is set', 422
    )
    rec.reconcile("app/db")
    event = gw.events[-1]
    assert event["reason"] == "ErrUpdateFailed"
    assert event["message"].startswith("Error updating app/db: the target Secret is immutable.")


def test_version_has_a_v_prefix() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("controller version: v")

"""Pure tests of the controller machinery: work queue, informer (fake list/watch), key ring,
key manager scheduling and flag parsing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _keys import entries, make_entry

from controller.informer import Handlers, Informer
from controller.key_manager import KeyManager, KeyOptions
from controller.keyring import ORDER_SECRET_CREATION, KeyRing, is_key_secret
from controller.kube_gateway import ApiError, TokenBucket, event_body
from controller.main import build_parser, parse_duration, parse_rfc1123z
from controller.testing import FakeKubeGateway
from controller.workqueue import WorkQueue

# --- work queue ---------------------------------------------------------------------------------


def test_queue_dedups_and_never_hands_a_key_to_two_workers() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = q.get(timeout=1)
    assert k == "a"
    q.add("a")  # while processing: replayed after done(), not handed out now
    assert q.get(timeout=1) == "b"
    assert q.get(timeout=0.05) is None
    q.done("a")
    assert q.get(timeout=1) == "a"
    q.shutdown()
    assert q.get(timeout=1) is None


def test_queue_backoff_is_exponential_and_forget_resets() -> None:
    q = WorkQueue(qps=0)
    delays = [q.when("k") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0 and q.when("k") == pytest.approx(0.005)
    assert WorkQueue(qps=0).when("x") <= 0.005
    capped = WorkQueue(qps=0, max_delay=1000.0)
    for _ in range(40):
        last = capped.when("y")
    assert last == 1000.0
    q.shutdown()
    capped.shutdown()


def test_queue_token_bucket_limits_overall_rate() -> None:
    q = WorkQueue(qps=10, burst=100, base_delay=0.0)
    delays = [q.when(f"k{i}") for i in range(120)]
    assert max(delays[:99]) == 0.0
    assert delays[119] == pytest.approx(2.0, abs=0.1)  # 20 beyond the burst at 10 qps
    q.shutdown()


def test_queue_add_after() -> None:
    q = WorkQueue()
    t0 = time.monotonic()
    q.add_after("late", 0.2)
    assert q.busy()
    assert q.get(timeout=2) == "late"
    assert time.monotonic() - t0 >= 0.19
    q.shutdown()


# --- informer -------------------------------------------------------------------------------------


def obj(name: str, rv: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": rv,
            "managedFields": [{"x": 1}],
        },
        "spec": spec,
    }


class FakeLW:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.rv = 10
        self.watches: list[Any] = []  # scripted watch results (list of events or exception)
        self.lists = 0
        self.watch_rvs: list[str] = []

    def list(self, *, limit: int, continue_: str | None) -> dict[str, Any]:
        self.lists += 1
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": list(self.items.values())}

    def watch(self, *, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        self.watch_rvs.append(resource_version)
        if not self.watches:
            time.sleep(0.05)
            return
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


def test_informer_list_watch_bookmarks_410_relist_with_delete_diffing() -> None:
    lw = FakeLW()
    lw.items = {"a": obj("a", "1"), "b": obj("b", "2")}
    lw.watches = [
        [
            {"type": "ADDED", "object": obj("c", "11")},
            {"type": "MODIFIED", "object": obj("a", "12", x=1)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
        ],
        ApiError("boom", 0),  # network error: backoff, re-watch from the last rv
        [{"type": "ERROR", "object": {"code": 410, "message": "too old"}}],
    ]
    events: list[tuple[str, str]] = []
    handlers = Handlers(
        on_add=lambda o: events.append(("add", o["metadata"]["name"])),
        on_update=lambda a, b: events.append(("update", b["metadata"]["name"])),
        on_delete=lambda o: events.append(("delete", o["metadata"]["name"])),
    )

    def relist_state() -> None:
        # while the informer was away: b deleted, d created
        lw.items = {"a": obj("a", "12", x=1), "c": obj("c", "11"), "d": obj("d", "20")}
        lw.rv = 20

    inf = Informer(lw, handlers, backoff_initial=0.01)
    orig_watch = lw.watch

    def watch(**kw: Any) -> Iterator[dict[str, Any]]:
        if len(lw.watch_rvs) == 2:
            relist_state()
        return orig_watch(**kw)

    lw.watch = watch  # type: ignore[method-assign]
    inf.start()
    try:
        deadline = time.monotonic() + 5
        while ("add", "d") not in events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        inf.stop()
    assert events[:4] == [("add", "a"), ("add", "b"), ("add", "c"), ("update", "a")]
    assert ("delete", "b") in events and ("add", "d") in events
    assert lw.watch_rvs[:3] == ["10", "15", "15"]  # bookmark rv kept across the error
    assert lw.lists >= 2 and inf.relists >= 2
    assert sorted(inf.keys()) == ["ns/a", "ns/c", "ns/d"]
    assert "managedFields" not in inf.get("ns/a")["metadata"]
    assert inf.synced.is_set()


def test_informer_handler_errors_do_not_kill_it() -> None:
    lw = FakeLW()
    lw.items = {"a": obj("a", "1")}

    def bad(_o: Any) -> None:
        raise RuntimeError("handler bug")

    inf = Informer(lw, Handlers(on_add=bad))
    inf.start()
    assert inf.wait_synced(2)
    inf.stop()
    assert inf.get("ns/a") is not None


# --- key ring and key manager -------------------------------------------------------------------


def test_keyring_order_usage_and_dedup() -> None:
    a, b, c = entries(3)
    ring = KeyRing()
    ring.replace_all([c, a, b])
    assert [e.fingerprint for e in ring.entries()] == [a.fingerprint, b.fingerprint, c.fingerprint]
    assert ring.latest() is c and ring.private_keys()[0] is c.private_key
    changes: list[int] = []
    ring.on_change(lambda: changes.append(1))
    assert not ring.add(a)  # same key, same Secret: no change
    ring.record_usage("ns/x", a.fingerprint)
    ring.record_usage("ns/y", a.fingerprint)
    ring.record_usage("ns/x", b.fingerprint)
    assert ring.usage_counts() == {a.fingerprint: 1, b.fingerprint: 1, c.fingerprint: 0}
    ring.record_usage("ns/y", None)
    assert ring.hint("ns/y") is None and ring.usage_counts()[a.fingerprint] == 0
    assert ring.remove(c.secret_name) and ring.latest() is b and changes == [1]
    assert "PRIVATE" not in repr(a)
    by_creation = KeyRing(order_priority=ORDER_SECRET_CREATION)
    by_creation.replace_all([a, b])
    assert by_creation.latest() is b
    with pytest.raises(ValueError):
        KeyRing(order_priority="Random")


def test_is_key_secret() -> None:
    lbl = "sealedsecrets.bitnami.com/sealed-secrets-key"
    assert is_key_secret({"metadata": {"name": "x", "labels": {lbl: "active"}}})
    assert not is_key_secret({"metadata": {"name": "x", "labels": {lbl: "compromised"}}})
    assert is_key_secret({"metadata": {"name": "sealed-secrets-key"}})


def test_key_manager_generates_cutoff_and_schedules_renewal() -> None:
    gw = FakeKubeGateway()
    ring = KeyRing()
    now = datetime.now(UTC)
    km = KeyManager(
        gw, ring, KeyOptions(namespace="ks", bits=2048, renew_period=timedelta(days=30))
    )
    assert km.load() == 0 and km.needs_key()
    entry = km.generate()
    assert gw.secrets[("ks", entry.secret_name)]["type"] == "kubernetes.io/tls"
    assert not km.needs_key()
    due = km.next_renewal(now)
    assert timedelta(days=29) < due - now <= timedelta(days=30, seconds=5)
    old = make_entry("old", age_days=40)
    ring.replace_all([old])
    assert km.next_renewal(now) == now  # overdue: never in the past
    km.opts.cutoff = now - timedelta(days=1)
    assert km.needs_key()
    km.opts.renew_period = timedelta(0)
    assert km.next_renewal(now) is None


def test_key_manager_loop_generates_when_leading() -> None:
    gw = FakeKubeGateway()
    ring = KeyRing()
    km = KeyManager(
        gw, ring, KeyOptions(namespace="ks", bits=2048, renew_period=timedelta(seconds=0.5))
    )
    got = threading.Event()
    ring.on_change(lambda: len(ring.entries()) >= 2 and got.set())
    km.start_leading()
    try:
        assert got.wait(20)
    finally:
        km.stop_leading()
    n = len(gw.secrets)
    time.sleep(0.7)
    assert len(gw.secrets) == n  # stopped leading: no more keys


# --- gateway helpers ----------------------------------------------------------------------------


def test_event_body_aggregates_by_name_and_has_upstream_source() -> None:
    ss = {"metadata": {"name": "db", "namespace": "app", "uid": "u1"}}
    a = event_body(ss, "Warning", "ErrUnsealFailed", "Failed to unseal: x")
    b = event_body(ss, "Warning", "ErrUnsealFailed", "Failed to unseal: x")
    c = event_body(ss, "Warning", "ErrUnsealFailed", "Failed to unseal: y")
    assert a["metadata"]["name"] == b["metadata"]["name"] != c["metadata"]["name"]
    assert a["source"] == {"component": "sealed-secrets"}
    assert a["involvedObject"]["kind"] == "SealedSecret"


def test_token_bucket() -> None:
    tb = TokenBucket(100, 5)
    t0 = time.monotonic()
    for _ in range(15):
        tb.take()
    assert 0.08 <= time.monotonic() - t0 < 1.0
    unlimited = TokenBucket(0, 1)
    t0 = time.monotonic()
    for _ in range(1000):
        unlimited.take()
    assert time.monotonic() - t0 < 0.5


# --- flags --------------------------------------------------------------------------------------


def test_durations_and_cutoff_parse_like_go() -> None:
    assert parse_duration("720h") == timedelta(hours=720)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("0") == timedelta(0)
    assert parse_duration("2m") == timedelta(minutes=2)
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("10 days")
    assert parse_rfc1123z("Mon, 02 Jan 2006 15:04:05 -0700") == datetime(
        2006, 1, 2, 22, 4, 5, tzinfo=UTC
    )
    assert parse_rfc1123z("") is None
    with pytest.raises(Exception, match="RFC1123Z"):
        parse_rfc1123z("2006-01-02")


def test_flags_env_and_go_style_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALED_SECRETS_KEY_RENEW_PERIOD", "0")
    monkeypatch.setenv("SEALED_SECRETS_UPDATE_STATUS", "false")
    monkeypatch.setenv("SEALED_SECRETS_KEY_PREFIX", "from-env")
    args = build_parser().parse_args(
        [
            "--all-namespaces=false",
            "--skip-recreate",
            "--key-prefix",
            "from-flag",
            "--rotate-period",
            "48h",
        ]
    )
    assert args.all_namespaces is False and args.skip_recreate is True
    assert args.update_status is False  # from the env
    assert args.key_prefix == "from-flag"  # an explicit flag wins
    assert args.key_renew_period == timedelta(hours=48)  # deprecated alias
    defaults = build_parser().parse_args([])
    assert defaults.key_size == 4096 and defaults.listen_addr == ":8080"
    assert defaults.max_unseal_retries == 5 and defaults.key_order_priority == "CertNotBefore"


def test_controller_config_is_typed_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from controller.config import ControllerConfig

    assert ControllerConfig.from_argv([]) == ControllerConfig()  # one list of defaults
    monkeypatch.setenv("SEALED_SECRETS_PRIVATEKEY_LABELS", "team=a")
    config = ControllerConfig.from_argv(["--additional-namespaces", "a, b,", "--key-ttl", "1h"])
    assert config.extra_namespaces == ["a", "b"] and config.key_ttl == timedelta(hours=1)
    assert config.privatekey_labels == {"team": "a"} and config.key_cutoff_time is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.key_size = 1  # type: ignore[misc]


def test_bad_env_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEALED_SECRETS_KEY_TTL", "forever")
    with pytest.raises(SystemExit) as exc:
        build_parser()
    assert exc.value.code == 2
    assert "SEALED_SECRETS_KEY_TTL" in capsys.readouterr().err


# --- runner queueing rules ----------------------------------------------------------------------


def test_runner_enqueues_on_spec_change_only_and_on_owned_secret_deletion() -> None:
    from controller.runner import SealedSecretController

    gw = FakeKubeGateway()
    ctl = SealedSecretController(gw, KeyRing(), namespaces=["ns"])  # type: ignore[arg-type]
    try:
        a = obj("a", "1", encryptedData={"k": "v"})
        ctl._sealed_added(a)
        assert ctl.queue.get(timeout=1) == "ns/a"
        ctl.queue.done("ns/a")
        relabelled = {
            **a,
            "metadata": {
                **a["metadata"],
                "labels": {"x": "y"},
                "annotations": {"sealedsecrets.bitnami.com/cluster-wide": "true"},
            },
        }
        ctl._sealed_updated(a, relabelled)
        assert len(ctl.queue) == 0  # metadata-only edit: nothing (as upstream)
        ctl._sealed_updated(a, obj("a", "2", encryptedData={"k": "w"}))
        assert ctl.queue.get(timeout=1) == "ns/a"
        ctl.queue.done("ns/a")
        # an owned Secret deleted while its SealedSecret exists -> re-create
        ctl._sealed["ns"]._cache["ns/a"] = a
        owned = {
            "metadata": {
                "name": "a",
                "namespace": "ns",
                "ownerReferences": [
                    {"kind": "SealedSecret", "name": "a", "uid": "u", "controller": True}
                ],
            }
        }
        ctl._secret_deleted(owned)
        assert ctl.queue.get(timeout=1) == "ns/a"
        ctl.queue.done("ns/a")
        ctl._secret_deleted({"metadata": {"name": "a", "namespace": "ns"}})  # not ours
        assert len(ctl.queue) == 0
    finally:
        ctl.queue.shutdown()


def test_startup_error_is_one_line_and_exit_2(tmp_path: Any) -> None:
    import subprocess
    import sys

    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [a kubeconfig")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.main",
            "--kubeconfig",
            str(bad),
            "--listen-addr",
            "127.0.0.1:0",
            "--listen-metrics-addr",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "startup failed:" in res.stderr and "Traceback" not in res.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "controller.main", "--key-size", "big"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr

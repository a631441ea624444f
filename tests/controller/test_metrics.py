"""Metric names, labels and lifecycles match upstream's, on a private registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import Metrics


def _samples(m: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_upstream_names_and_labels() -> None:
    m = Metrics(revision="v1.2.3")
    m.count_unseal_request()
    m.count_unseal_error("unseal", "team-a")
    m.set_condition("team-a", "db", False, labels={"app.kubernetes.io/instance": "shop"})
    m.observe_http("/v1/cert.pem", "GET", 200, 0.01)
    s = _samples(m)
    assert s["sealed_secrets_controller_build_info"] == [({"revision": "v1.2.3"}, 0.0)]
    assert s["sealed_secrets_controller_unseal_requests_total"] == [({}, 1.0)]
    assert s["sealed_secrets_controller_unseal_errors_total"] == [
        ({"reason": "unseal", "namespace": "team-a"}, 1.0)
    ]
    assert s["sealed_secrets_controller_condition_info"] == [
        (
            {
                "namespace": "team-a",
                "name": "db",
                "condition": "Synced",
                "ss_app_kubernetes_io_instance": "shop",
            },
            -1.0,
        )
    ]
    assert s["sealed_secrets_controller_http_requests_total"] == [
        ({"path": "/v1/cert.pem", "code": "200", "method": "get"}, 1.0)
    ]
    assert ({"path": "/v1/cert.pem", "method": "get"}, 1.0) in s[
        "sealed_secrets_controller_http_request_duration_seconds_count"
    ]
    assert not any(name.endswith("_created") for name in s)


def test_condition_values_and_removal() -> None:
    m = Metrics()
    m.set_condition("ns", "a", True)
    m.set_condition("ns", "b", None)
    m.set_condition("ns", "c", False)
    values = {lab["name"]: v for lab, v in _samples(m)["sealed_secrets_controller_condition_info"]}
    assert values == {"a": 1.0, "b": 0.0, "c": -1.0}
    m.remove_condition("ns", "a")
    m.remove_condition("ns", "never-seen")
    names = {lab["name"] for lab, _ in _samples(m)["sealed_secrets_controller_condition_info"]}
    assert names == {"b", "c"}
    # A changed instance label moves the series instead of leaving a stale one behind.
    m.set_condition("ns", "b", True, labels={"app.kubernetes.io/instance": "x"})
    rows = [
        lab
        for lab, _ in _samples(m)["sealed_secrets_controller_condition_info"]
        if lab["name"] == "b"
    ]
    assert [r["ss_app_kubernetes_io_instance"] for r in rows] == ["x"]


def test_omit_secret_labels_hides_the_inventory() -> None:
    m = Metrics(omit_secret_labels=True)
    m.set_condition("payments", "stripe-prod-key", True)
    m.count_unseal_request()
    text = m.exposition().decode()
    assert "stripe-prod-key" not in text
    assert "sealed_secrets_controller_unseal_requests_total 1.0" in text


def test_key_usage_and_leader_gauges() -> None:
    m = Metrics()
    m.set_key_usage({"SHA256:old": 0, "SHA256:new": 5})
    m.set_leader("sealed-secrets-controller", True)
    s = _samples(m)
    assert sorted(s["sealkit_key_sealedsecrets"], key=lambda r: r[1]) == [
        ({"fingerprint": "SHA256:old"}, 0.0),
        ({"fingerprint": "SHA256:new"}, 5.0),
    ]
    assert s["leader_election_master_status"] == [({"name": "sealed-secrets-controller"}, 1.0)]
    m.set_key_usage({"SHA256:new": 4})
    m.set_leader("sealed-secrets-controller", False)
    s = _samples(m)
    assert s["sealkit_key_sealedsecrets"] == [({"fingerprint": "SHA256:new"}, 4.0)]
    assert s["leader_election_master_status"] == [({"name": "sealed-secrets-controller"}, 0.0)]


def test_registries_are_private() -> None:
    a, b = Metrics(), Metrics()
    a.count_unseal_request()
    assert b"unseal_requests_total 0.0" in b.exposition()


def test_unknown_error_reason_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        Metrics().count_unseal_error("oops", "ns")


def test_standard_process_and_platform_collectors() -> None:
    """Generic CPU/memory panels read process_*; python_info names the runtime."""
    import os

    s = _samples(Metrics())
    (rss,) = s["process_resident_memory_bytes"]
    assert rss[1] > 1_000_000
    (cpu,) = s["process_cpu_seconds_total"]
    assert cpu[1] > 0
    (start,) = s["process_start_time_seconds"]
    assert abs(start[1] - os.stat(f"/proc/{os.getpid()}").st_ctime) < 600
    assert s["process_open_fds"][0][1] >= 3
    (info,) = s["python_info"]
    assert info[0]["implementation"] == "CPython"
    assert "python_gc_collections_total" in s
    # Two controllers in one process still export them, each once.
    a, b = Metrics(), Metrics()
    assert a.exposition().count(b"\nprocess_resident_memory_bytes ") == 1
    assert b"process_resident_memory_bytes" in b.exposition()
    assert b"process_" not in Metrics(process=False).exposition()

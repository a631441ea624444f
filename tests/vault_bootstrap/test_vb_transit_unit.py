"""Transit in the config model and the pure planner: defaults that protect the key, one-way
settings never planned back, a type change refused, and a transit mount never pruned."""

from __future__ import annotations

import pytest

from vault_bootstrap import make_plan
from vault_bootstrap._config import parse_config
from vault_bootstrap._desired import build_desired
from vault_bootstrap._errors import ConfigError, PlanError
from vault_bootstrap._model import Observed, ObservedObject, StateRecord
from vault_bootstrap._observe import normalise_transit_key
from vault_bootstrap._refs import Resolver

PATH = "transit/keys/k"


def _desired(key: dict[str, object] | None = None) -> list:
    config = parse_config({"secrets": {"transit": {"type": "transit", "keys": {"k": key or {}}}}})
    return build_desired(config, Resolver())


def _plan(desired: list, observed: Observed, prune: bool = False):
    return make_plan(desired, observed, state_mount="secret", state_path="s", prune=prune)


def _observed(**settings: object) -> Observed:
    obs = Observed()
    obs.objects["secrets_mount:sys/mounts/transit"] = ObservedObject(
        fields={"type": "transit", "description": ""}
    )
    raw = {"type": "aes256-gcm96", "keys": {"1": 1700000000}, "latest_version": 1} | settings
    obs.objects[f"transit_key:{PATH}"] = normalise_transit_key(raw)
    return obs


def test_defaults_protect_the_key() -> None:
    key = _desired()[1]
    assert key.kind == "transit_key" and key.path == PATH
    assert key.fields == {
        "type": "aes256-gcm96",
        "exportable": False,
        "allow_plaintext_backup": False,
        "deletion_allowed": False,
    }
    plan = _plan(_desired(), Observed())
    assert [(c.action, c.kind, c.write_path or c.path) for c in plan.changes] == [
        ("create", "secrets_mount", "sys/mounts/transit"),
        ("create", "transit_key", PATH),
    ]
    assert plan.changes[1].body == {
        "type": "aes256-gcm96",
        "exportable": False,
        "allow_plaintext_backup": False,
    }


def test_in_sync_is_no_change_and_drift_tunes_the_config_endpoint() -> None:
    assert not _plan(_desired(), _observed()).has_changes
    plan = _plan(_desired(), _observed(deletion_allowed=True))
    assert [(c.action, c.write_path) for c in plan.changes] == [("update", f"{PATH}/config")]
    assert plan.changes[0].body == {"deletion_allowed": False}
    plan = _plan(_desired({"deletion_allowed": True}), Observed())
    assert [c.write_path or c.path for c in plan.changes][-1] == f"{PATH}/config"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"type": "chacha20-poly1305"}, "a key's type cannot change"),
        ({"exportable": True}, "exportable=true, which Vault cannot undo"),
        ({"allow_plaintext_backup": True}, "allow_plaintext_backup=true"),
    ],
)
def test_irreversible_changes_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        _plan(_desired(), _observed(**settings))


def test_transit_mount_is_never_pruned_and_keys_never_deleted() -> None:
    obs = _observed()
    obs.state = StateRecord(created={"secrets_mount:sys/mounts/transit", f"transit_key:{PATH}"})
    obs.state_exists = True
    other = parse_config({"policies": {"p": {"policy": 'path "x" { capabilities = ["read"] }'}}})
    plan = _plan(build_desired(other, Resolver()), obs, prune=True)
    assert not [c for c in plan.changes if c.action == "delete"]
    assert any("not pruned" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({"type": "ed25519"}, "secrets.transit.keys.k.type"),
        ({"auto_rotate_period": "10m"}, "at least 1h"),
        ({"material": "x"}, "unknown key"),
    ],
)
def test_config_errors_name_the_field(key: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _desired(key)

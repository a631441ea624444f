"""Online paths on the in-memory controller (`sealkit.testing.FakeController`): the report
asks /v1/verify and waits out 429s; `plan_online` takes only the ciphertexts from /v1/rotate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _trees import build_tree, make_key, sealed
from cryptography.hazmat.primitives import serialization

from sealkit._exceptions import ClusterError
from sealkit.keyops import find_sealed, report_online, retry_throttled
from sealkit.keyops._reencrypt import plan_online
from sealkit.model import unseal_sealed_secret
from sealkit.output import to_yaml
from sealkit.testing import FakeController


class Throttled(FakeController):
    """Answers 429 to every other call, like a rate-limited controller."""

    calls = 0

    def _gate(self) -> None:
        self.calls += 1
        if self.calls % 2:
            raise ClusterError("cannot validate sealed secret: controller answered 429")

    def verify(self, sealed: Any) -> None:
        self._gate()
        super().verify(sealed)

    def rotate(self, sealed: Any) -> dict[str, Any]:
        self._gate()
        return super().rotate(sealed)


@pytest.fixture(scope="module")
def pairs() -> list[Any]:
    return [make_key(), make_key()]


def controller(pairs: list[Any]) -> Throttled:
    return Throttled([(k, c.public_bytes(serialization.Encoding.PEM)) for k, c in pairs])


def test_online_report_and_rotate_plan(tmp_path: Path, pairs: list[Any]) -> None:
    old, new = pairs[0][0], pairs[1][0]
    tree = build_tree(tmp_path / "t", [("a", "x", old), ("a", "y", new)])
    (tmp_path / "t" / "z.yaml").write_text(to_yaml(sealed("z", "a", make_key()[0].public_key())))
    refs, _ = find_sealed([tree.root])
    waits: list[float] = []

    def call(fn: Any) -> Any:
        return retry_throttled(fn, sleep=waits.append)

    ctl = controller(pairs)
    rows = {r.name: r for r in report_online(refs, ctl, call=call)}
    assert rows["x"].fingerprints == ("?",) and rows["y"].fingerprints == ("?",)
    assert rows["z"].unopened == ("*",)
    assert waits  # the 429s were waited out, not reported
    plan = plan_online([r for r in refs if r.name != "z"], ctl, call=call)
    assert not plan.errors and sorted(plan.stale) == ["a/x", "a/y"]
    for f in plan.files:
        text = f.render(f.path.read_text(), None)
        doc = yaml.safe_load(text)
        assert unseal_sealed_secret(doc, [new])["data"]
    with pytest.raises(ClusterError, match="answered 500"):
        retry_throttled(
            lambda: (_ for _ in ()).throw(ClusterError("controller answered 500")),
            sleep=waits.append,
        )

"""The public surface of `sealkit` is exactly its sorted `__all__`."""

from __future__ import annotations

import sealkit


def test_all_is_sorted_and_unique() -> None:
    assert list(sealkit.__all__) == sorted(set(sealkit.__all__))


def test_every_exported_name_resolves() -> None:
    for name in sealkit.__all__:
        assert getattr(sealkit, name) is not None, name


def test_public_names_are_exported() -> None:
    public = {
        name
        for name in dir(sealkit)
        if not name.startswith("_")
        and name not in {"annotations", "importlib", "TYPE_CHECKING", "Any"}
        and not isinstance(getattr(sealkit, name), type(sealkit))  # submodules
    }
    assert public <= set(sealkit.__all__)


def test_errors_have_exit_codes() -> None:
    assert sealkit.SealkitError.exit_code == 1
    assert sealkit.UsageError.exit_code == 2
    for cls in (sealkit.InputError, sealkit.CertError, sealkit.UnsealError, sealkit.ClusterError):
        assert issubclass(cls, sealkit.SealkitError)
        assert cls.exit_code == 1


def test_import_is_lazy() -> None:
    import subprocess
    import sys

    code = "import sealkit, sys; print('cryptography' in sys.modules, 'yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_core_is_pure() -> None:
    """The core never imports the cluster or Vault clients; only sealkit.cluster may."""
    import subprocess
    import sys

    code = (
        "import sys, sealkit, sealkit.crypto, sealkit.scopes, sealkit.certs, sealkit.keys, "
        "sealkit.model, sealkit.output, sealkit.documents, sealkit.templates, sealkit.yamlrt, "
        "sealkit.files, sealkit.cluster, sealkit.cli, sealkit.cli._modes, sealkit.cli._kubeseal; "
        "print(sorted(m for m in ('kubernetes', 'hvac', 'ruamel', 'controller', "
        "'vault_bootstrap') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""`sealkit keygen`: an offline sealing key + certificate in the controller's key-Secret format.

Writes two files and prints their paths and the key's fingerprint (never key material):

* the key Secret manifest (YAML, mode 0600): ``type: kubernetes.io/tls``, PKCS#1 ``tls.key``,
  label ``sealedsecrets.bitnami.com/sealed-secrets-key=active``, ``generateName`` unless
  ``--name`` is given, namespace ``kube-system`` unless ``--namespace``;
* the certificate PEM, for ``sealkit --cert`` / ``kubeseal --cert``.

Default files are ``<out-dir>/<base>.yaml`` and ``<out-dir>/<base>.crt`` where ``<base>`` is the
``--name`` or ``sealed-secrets-key``; ``--key-secret-file``/``--cert-file`` name them exactly.
Existing files are never overwritten without ``--force`` (exit 1, nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sealkit.keys import DEFAULT_KEY_BITS, DEFAULT_KEY_PREFIX


@click.command(
    "keygen",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Generate an RSA key + self-signed certificate as a sealed-secrets key Secret.",
)
@click.option(
    "--key-size",
    type=int,
    default=DEFAULT_KEY_BITS,
    show_default=True,
    help="RSA modulus size in bits.",
)
@click.option(
    "--namespace",
    "namespace",
    default="kube-system",
    show_default=True,
    help="Namespace of the key Secret (the controller's namespace).",
)
@click.option(
    "--name",
    default=None,
    help="Fixed Secret name (default: generateName, as the controller does).",
)
@click.option(
    "--key-prefix",
    default=DEFAULT_KEY_PREFIX,
    show_default=True,
    help="generateName prefix when --name is not given.",
)
@click.option("--cn", default="", help="Certificate subject/issuer CN (controller: --my-cn).")
@click.option(
    "--ttl",
    default="87600h",
    show_default=True,
    help="Certificate lifetime, Go duration (87600h, 720h, or 30d).",
)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the default file names.",
)
@click.option(
    "--key-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path of the key Secret manifest (overrides --out-dir).",
)
@click.option(
    "--cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path of the certificate PEM (overrides --out-dir).",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--debug", is_flag=True, hidden=True)
def command(
    key_size: int,
    namespace: str,
    name: str | None,
    key_prefix: str,
    cn: str,
    ttl: str,
    out_dir: Path,
    key_secret_file: Path | None,
    cert_file: Path | None,
    force: bool,
    debug: bool,
) -> int:
    from sealkit.keygen import generate, parse_duration, write_files

    base = name or key_prefix
    key_path = key_secret_file or out_dir / f"{base}.yaml"
    cert_path = cert_file or out_dir / f"{base}.crt"
    lifetime = parse_duration(ttl)
    # Fail on existing files before spending seconds on an RSA-4096 key.
    if not force:
        from sealkit._exceptions import InputError

        for path in (key_path, cert_path):
            if path.exists():
                raise InputError(f"{path}: already exists (use --force to overwrite)")
    material = generate(
        bits=key_size,
        namespace=namespace,
        name=name,
        generate_name=key_prefix,
        cn=cn,
        ttl=lifetime,
    )
    write_files(material, key_path, cert_path, force=force)
    sys.stdout.write(
        f"key Secret:  {key_path} (mode 0600; keep it out of Git)\n"
        f"certificate: {cert_path}\n"
        f"fingerprint: {material.fingerprint}\n"
        f"expires:     {material.not_after.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    )
    return 0

"""The restricted Go-template renderer: pinned behaviour plus a differential test against Go.

The differential test renders the same templates with the real Go text/template + Sprig v3
(the oracle in `goracle/`) and requires: whenever we render, Go renders the same bytes; and the
cases we must support do render.
"""

from __future__ import annotations

import random

import pytest
from _goracle import go_render, oracle_path

from sealkit.templates import TemplateError, build_secret_data, render, render_template_data

CTX = {
    "user": b"admin",
    "pass": b'p@ss w"rd\n',
    "foo-bar": b"dash",
    "sp": b"  \t padded \n",
    "b64": b"aGVsbG8=",
    "bin": b"\xff\x00\xc3\xa9",
    "uni": "h\u00e9llo \u4e16\u754c".encode(),
    "empty": b"",
}

SUPPORTED = [
    ("plain text", b"plain text"),
    ("{{ .user }}", b"admin"),
    ("{{.user}}", b"admin"),
    ('{{ index . "foo-bar" }}', b"dash"),
    ('{{ index . "nope" }}', b""),
    ("{{ .nope }}", b"<no value>"),
    ("{{ .user | upper }}", b"ADMIN"),
    ("{{ .user | b64enc }}", b"YWRtaW4="),
    ("{{ .b64 | b64dec }}", b"hello"),
    ("{{ .pass | quote }}", b'"p@ss w\\"rd\\n"'),
    ("{{ .pass | squote }}", b"'p@ss w\"rd\n'"),
    ("{{ .sp | trim }}", b"padded"),
    ('{{ .user | trimPrefix "ad" }}', b"min"),
    ('{{ .user | trimSuffix "in" }}', b"adm"),
    ('{{ .user | replace "a" "A" }}', b"Admin"),
    ('{{ .nope | default "fallback" }}', b"fallback"),
    ('{{ .empty | default "fallback" }}', b"fallback"),
    ('{{ .user | default "fallback" }}', b"admin"),
    ('{{ printf "%s:%s" .user .user }}', b"admin:admin"),
    ('{{ printf "%q %d %v%%" .user 42 .user }}', b'"admin" 42 admin%'),
    ("a\n  {{- .user -}}  \nb", b"aadminb"),
    ("{{ (.user | upper) | quote }}", b'"ADMIN"'),
    ("{{ quote (upper .user) .user }}", b'"ADMIN" "admin"'),
    ("{{ .bin | quote }}", b'"\\xff\\x00\xc3\xa9"'),
    ("{{ .uni | quote }}", '"h\u00e9llo \u4e16\u754c"'.encode()),
    ("{{ .uni | b64enc }}", b"aMOpbGxvIOS4lueVjA=="),
    ("{{ .sp | nospace }}", b"padded"),
    ("{{ .uni | nospace }}", "h\u00c3\u00a9llo\u00e4\u00b8\u0096\u00e7\u0095\u008c".encode()),
    ("{{ .user | trunc 3 }}", b"adm"),
    ("{{ .user | trunc -2 }}", b"in"),
    ('{{ cat .user "x" 3 .nope }}', b"admin x 3"),
    ("{{ .nope | quote }}", b""),
    ("{{ `raw\\n` }}", b"raw\\n"),
    ('{{ "\\x41\\u00e9\\101" }}', "A\u00e9A".encode()),
    ("{{ 7 }}", b"7"),
]

REFUSED = [
    '{{ env "HOME" }}',
    "{{ .user | sha256sum }}",
    "{{ if .user }}x{{ end }}",
    "{{ range . }}x{{ end }}",
    "{{ $x := .user }}",
    "{{ . }}",
    "{{ .user.len }}",
    "{{/* comment */}}",
    '{{ printf "%5s" .user }}',
    '{{ printf "%s" }}',
    '{{ printf "%x" .user }}',
    "{{ .uni | upper }}",
    "{{ .nope | upper }}",
    "{{ .user | b64dec }}",
    '{{ .user "arg" }}',
    '{{ .user | "lit" }}',
    "{{ upper }}",
    "{{ }}",
    "{{ .user",
    "{{ true }}",
    "{{ 1.5 }}",
    "{{ 'a' }}",
    '{{ template "x" }}',
    "{{ index .user 0 }}",
]


@pytest.mark.parametrize(("tmpl", "expected"), SUPPORTED)
def test_supported_subset_renders_like_go(tmpl: str, expected: bytes) -> None:
    assert render(tmpl, CTX) == expected


@pytest.mark.parametrize("tmpl", REFUSED)
def test_everything_else_is_refused_with_a_clear_error(tmpl: str) -> None:
    with pytest.raises(TemplateError) as exc:
        render(tmpl, CTX, name="k")
    msg = str(exc.value)
    assert msg.startswith("template.data[k]:") and "\n" not in msg
    for value in CTX.values():
        if len(value) > 3:
            assert value.decode("utf-8", "replace") not in msg


def test_missing_key_prints_no_value_like_go_default() -> None:
    # Go's default missingkey=invalid prints "<no value>" for a map miss; pinned on purpose.
    assert render("x={{ .absent }}", {}) == b"x=<no value>"


def test_template_context_and_collision_rules() -> None:
    decrypted = {"password": b"s3cret", "hidden": b"h1dden"}
    tdata = {
        "password": "overwritten?",  # collides with encryptedData: not written
        "user": "admin",  # plaintext joins the context
        "dsn": "{{ .user }}:{{ .password }}@{{ .hidden }}",
        "hidden": None,  # null-omit: feeds the template but is not written
        "gone": None,
    }
    data = build_secret_data(decrypted, tdata)
    assert data == {"password": b"s3cret", "user": b"admin", "dsn": b"admin:s3cret@h1dden"}


def test_render_template_data_collects_errors_and_omits_nulls() -> None:
    assert render_template_data({"a": None, "b": "x"}, {}) == {"b": b"x"}
    with pytest.raises(TemplateError) as exc:
        render_template_data({"a": "{{ env 1 }}", "b": "{{ if }}"}, {})
    assert "template.data[a]" in str(exc.value) and "template.data[b]" in str(exc.value)


# --- differential test against the real Go renderer -------------------------------------------


@pytest.fixture(scope="module")
def oracle():
    path = oracle_path()
    if path is None:
        pytest.skip("Go text/template oracle unavailable (needs go + module proxy)")
    return path


def test_pinned_cases_match_go(oracle) -> None:
    results = go_render(oracle, [(t, CTX) for t, _ in SUPPORTED])
    for (tmpl, expected), (kind, out) in zip(SUPPORTED, results, strict=True):
        assert (kind, out) == ("ok", expected), tmpl


def test_go_also_fails_or_we_refuse(oracle) -> None:
    # Where Go itself errors, we must error too (never "succeed" where Go fails).
    results = go_render(oracle, [(t, CTX) for t in REFUSED])
    for tmpl, (kind, _) in zip(REFUSED, results, strict=True):
        if kind == "err":
            with pytest.raises(TemplateError):
                render(tmpl, CTX)


def _random_case(rng: random.Random) -> tuple[str, dict[str, bytes]]:
    def lit() -> str:
        chars = [rng.choice('ab -\\"\n\t\u00e9\u4e16=') for _ in range(rng.randint(0, 5))]
        body = "".join(chars).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return '"' + body.replace("\t", "\\t") + '"'

    def operand() -> str:
        return rng.choice(
            [
                ".a",
                ".b",
                ".e",
                ".zz",
                '(index . "c-d")',
                '(index . "q")',
                lit(),
                str(rng.randint(-5, 12)),
            ]
        )

    def stage() -> str:
        kind = rng.randint(0, 6)
        if kind == 0:
            return f"trimPrefix {lit()}"
        if kind == 1:
            return f"replace {lit()} {lit()}"
        if kind == 2:
            return f"default {operand()}"
        if kind == 3:
            return f"trunc {rng.randint(-4, 6)}"
        if kind == 4:
            verbs = "".join(
                rng.choice(["%s", "%d", "%q", "%v", "%%", "-"]) for _ in range(rng.randint(0, 2))
            )
            return f'printf "{verbs}"'
        return rng.choice(
            [
                "b64enc",
                "b64dec",
                "quote",
                "squote",
                "upper",
                "lower",
                "trim",
                "nospace",
                "cat",
                "trimSuffix " + lit(),
            ]
        )

    pieces = []
    for _ in range(rng.randint(1, 3)):
        pieces.append(rng.choice(["", "x", " \n ", "-"]))
        pipeline = " | ".join([operand()] + [stage() for _ in range(rng.randint(0, 3))])
        pieces.append(rng.choice(["{{", "{{- ", "{{ "]) + pipeline + rng.choice(["}}", " -}}"]))
    pieces.append(rng.choice(["", " y ", "\n"]))
    values = [
        b"",
        b"admin",
        b"  x y\t",
        b"YWRtaW4=",
        b"\xff\xfe",
        "\u00e9t\u00e9".encode(),
        b"a-b",
        b"%s",
        bytes(rng.randrange(256) for _ in range(rng.randint(0, 6))),
    ]
    ctx = {k: rng.choice(values) for k in rng.sample(["a", "b", "c-d", "e"], rng.randint(0, 4))}
    return "".join(pieces), ctx


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential_against_go(oracle, seed: int) -> None:
    rng = random.Random(seed)
    cases = [_random_case(rng) for _ in range(3000)]
    results = go_render(oracle, cases)
    rendered = 0
    for (tmpl, ctx), (kind, out) in zip(cases, results, strict=True):
        try:
            ours = render(tmpl, ctx)
        except TemplateError:
            continue  # refusing is always allowed
        rendered += 1
        assert kind == "ok", f"we rendered {tmpl!r} but Go failed: {out!r}"
        assert ours == out, (tmpl, ctx)
    assert rendered > 400  # the subset is actually exercised

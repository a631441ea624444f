"""Fixtures shared by the controller tests: the controller pod behind the Service, from
test_http_proxy.py (module-scoped: each module that uses it gets its own)."""

from test_http_proxy import proxied  # noqa: F401 - a fixture, shared with the hostile tests

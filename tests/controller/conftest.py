"""Fixtures shared by the controller tests: the service-proxy setup of test_http_proxy.py."""

from test_http_proxy import proxied  # noqa: F401 - a fixture, shared with the hostile tests

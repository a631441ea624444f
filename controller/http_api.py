"""The controller's HTTP API, kept importable under its old name.

The code lives in `controller.http` (transport, bounded body decoding, operations, routes,
listeners); see `controller.http.routes` for the paths and `docs/controller.md` for the limits.
"""

from controller.http.body import BadRequest, parse_sealed_secret
from controller.http.operations import NotOpenable, rotate_sealed_secret, verify_sealed_secret
from controller.http.routes import API_PATHS, KeySource
from controller.http.server import ApiOptions, ServerHandle, serve_api, serve_metrics
from controller.http.transport import parse_listen_addr

RATE_LIMITED_PATHS = ("/v1/verify", "/v1/rotate")

__all__ = [
    "API_PATHS",
    "ApiOptions",
    "BadRequest",
    "KeySource",
    "NotOpenable",
    "RATE_LIMITED_PATHS",
    "ServerHandle",
    "parse_listen_addr",
    "parse_sealed_secret",
    "rotate_sealed_secret",
    "serve_api",
    "serve_metrics",
    "verify_sealed_secret",
]

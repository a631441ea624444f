"""The controller's HTTP side: transport (`transport`), bounded request decoding (`body`),
what verify and rotate do (`operations`), the routes (`routes`) and the listeners (`server`)."""

from controller.http.server import ApiOptions, ServerHandle, serve_api, serve_metrics
from controller.http.transport import Limits, parse_listen_addr

__all__ = [
    "ApiOptions",
    "Limits",
    "ServerHandle",
    "parse_listen_addr",
    "serve_api",
    "serve_metrics",
]

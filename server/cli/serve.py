"""``concierge serve``: the HTTP server, drained gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

from server.config import EngineKind, Settings

log = logging.getLogger("concierge")


def add_serve_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="interface to bind (CONCIERGE_HOST)")
    serve.add_argument("--port", type=int, help="port (CONCIERGE_PORT)")
    serve.add_argument("--engine", choices=[kind.value for kind in EngineKind])
    serve.add_argument("--model", help="registry name, local folder or hub id")
    serve.add_argument(
        "--remote-url",
        action="append",
        dest="remote_urls",
        help="OpenAI-compatible upstream (repeatable) for --engine openai_remote",
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument(
        "--eager",
        dest="enforce_eager",
        action="store_true",
        default=None,
        help="skip torch.compile: faster start, slower serving",
    )
    mode.add_argument(
        "--compiled",
        dest="enforce_eager",
        action="store_false",
        help="torch.compile the model (default)",
    )
    serve.set_defaults(handler=_serve)


def _serve(_: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from core.errors import ModelNotFoundError
    from server.app import create_app
    from server.gate.drain import serve as serve_gracefully
    from server.http.head_limit import head_limited_protocol
    from server.lifespan import build_engine

    try:  # building is cheap (loading happens in the lifespan); fail before binding the port
        engine = build_engine(settings)
    except ModelNotFoundError as exc:
        sys.stderr.write(f"{exc.message}\n")
        return 2

    log.info(
        "serving on http://%s:%d (engine=%s, model=%s)",
        settings.host,
        settings.port,
        settings.engine.value,
        settings.model,
    )
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to the handler configure_logging set
        access_log=False,  # RequestContextMiddleware logs route templates, never raw paths
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        http=head_limited_protocol(settings.max_header_bytes, settings.header_timeout_s),
    )
    return serve_gracefully(app, config)

"""The ``concierge`` command: serve, chat, config, models, kb, tenants, catalog, customers.

Output meant for a person goes to stdout; diagnostics go through logging to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from server.cli.crypto import add_crypto_commands
from server.cli.db import add_db_commands
from server.cli.kb import add_kb_commands
from server.cli.keys import add_keys_commands
from server.cli.support import add_support_commands
from server.config import EngineKind, Settings
from server.http.logs import configure_logging

log = logging.getLogger("concierge")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``concierge`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # vLLM logs to stdout by default; keep stdout for what the command prints.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings(**_overrides(args))
    except (ValidationError, ValueError) as exc:  # ValueError: unreadable config file
        sys.stderr.write(f"invalid settings:\n{exc}\n")
        return 2
    configure_logging(settings.log_level, settings.effective_log_format)
    handler: Any = args.handler
    result: int = handler(args, settings)
    return result


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="concierge", description="Self-hosted inference server for customer support."
    )
    commands = parser.add_subparsers(title="commands")

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

    chat = commands.add_parser("chat", help="one-shot answer from a server or in-process")
    chat.add_argument("message")
    chat.add_argument("--url", default=None, help="server base URL (default: from host/port)")
    chat.add_argument(
        "--in-process",
        action="store_true",
        help="start the engine in this process instead of calling a server",
    )
    chat.add_argument("--system", default="You are a helpful customer support assistant.")
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.set_defaults(handler=_chat)

    config = commands.add_parser("config", help="inspect settings")
    config_commands = config.add_subparsers(title="config commands")
    show = config_commands.add_parser("show", help="print effective settings, secrets masked")
    show.set_defaults(handler=_config_show)

    models = commands.add_parser("models", help="list and prepare models")
    model_commands = models.add_subparsers(title="models commands")
    listing = model_commands.add_parser("list", help="registered models and their state")
    listing.set_defaults(handler=_models_list)
    prepare = model_commands.add_parser("prepare", help="convert/verify a model's weights")
    prepare.add_argument("names", nargs="*", help="model names (default: the configured ones)")
    prepare.set_defaults(handler=_models_prepare)
    train = model_commands.add_parser(
        "train-classifiers",
        help="retrain the sentiment and intent heads (the default ones ship trained; "
        "skipped when the data is unchanged)",
    )
    train.add_argument(
        "--data",
        "--source",
        dest="source",
        type=Path,
        help="labelled data folder laid out like ../shared/data (Bitext, TweetEval; "
        "default: CONCIERGE_TRAINING_DATA_DIR)",
    )
    train.add_argument(
        "--out",
        type=Path,
        help="write the heads into this folder in the shipped layout (e.g. "
        "models/classifiers/default_heads) instead of a local set under the data directory",
    )
    train.add_argument("--force", action="store_true", help="retrain even if up to date")
    train.add_argument("--tenant", help="train this tenant's own intent head (needs --intents)")
    train.add_argument(
        "--intents", type=Path, help="the tenant's examples: .csv (text,label) or .jsonl"
    )
    train.set_defaults(handler=_models_train_classifiers)

    add_kb_commands(commands)
    add_support_commands(commands)
    add_db_commands(commands)
    add_crypto_commands(commands)
    add_keys_commands(commands)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("host", "port", "engine", "model", "remote_urls", "enforce_eager")
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}


def _serve(_: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from core.errors import ModelNotFoundError
    from server.app import create_app
    from server.gate.drain import serve as serve_gracefully
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
    )
    return serve_gracefully(app, config)


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    messages = [
        {"role": "system", "content": args.system},
        {"role": "user", "content": args.message},
    ]
    if args.in_process:
        return asyncio.run(_chat_in_process(messages, args, settings))
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    payload = {
        "model": settings.model_display_name,
        "messages": messages,
        "stream": True,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    try:
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json=payload,
            timeout=httpx.Timeout(300, connect=5),
        ) as response:
            if response.status_code >= 400:
                response.read()
                sys.stderr.write(f"error {response.status_code}: {response.text}\n")
                return 1
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    sys.stderr.write(f"\nerror: {event['error']['message']}\n")
                    return 1
                for choice in event.get("choices", []):
                    sys.stdout.write(choice.get("delta", {}).get("content") or "")
                    sys.stdout.flush()
    except httpx.HTTPError as exc:
        sys.stderr.write(f"cannot reach {url}: {exc} (is `concierge serve` running?)\n")
        return 1
    sys.stdout.write("\n")
    return 0


async def _chat_in_process(
    messages: list[dict[str, str]], args: argparse.Namespace, settings: Settings
) -> int:
    from models.engine.base import ChatMessage, SamplingOptions
    from server.lifespan import build_engine

    engine = build_engine(settings)
    await engine.start()
    try:
        options = SamplingOptions(max_tokens=args.max_tokens, temperature=args.temperature)
        turns = [ChatMessage(m["role"], m["content"]) for m in messages]  # type: ignore[arg-type]
        async for chunk in engine.stream_chat(turns, options, uuid.uuid4().hex):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
    finally:
        await engine.shutdown()
    sys.stdout.write("\n")
    return 0


def _config_show(_: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(json.dumps(settings.masked(), indent=2, default=str) + "\n")
    return 0


def _models_list(_: argparse.Namespace, settings: Settings) -> int:
    from models.prepare import models_dir, verify_folder
    from models.registry import ModelRegistry, PackagedGGUF

    rows = [("NAME", "TASK", "SOURCE", "STATE")]
    for spec in ModelRegistry().specs():
        source = spec.source
        if isinstance(source, PackagedGGUF):
            problem = verify_folder(models_dir(settings.data_dir) / spec.name)
            state = "prepared" if problem is None else problem
            where = f"pypi:{source.package}/{source.filename}"
        else:
            state = "ready (no conversion)"
            where = f"pypi:{getattr(source, 'package', '')}"
        rows.append((spec.name, spec.task.value, where, state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n")
    return 0


def _models_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from models.prepare import prepare_model
    from models.registry import ModelRegistry, ModelTask

    registry = ModelRegistry()
    wanted = args.names or [settings.model, settings.embedding_model]
    for name in wanted:
        task = ModelTask.EMBED if name == settings.embedding_model else ModelTask.GENERATE
        prepared = prepare_model(registry.resolve(name, task), Path(settings.data_dir))
        verb = "converted" if prepared.converted else "ready"
        sys.stdout.write(f"{name}: {verb} at {prepared.location}\n")
    return 0


def _models_train_classifiers(args: argparse.Namespace, settings: Settings) -> int:
    """Retrain heads: a local default set (overrides the shipped one), the shipped set
    itself (``--out``), or one tenant's intent head (``--tenant`` with ``--intents``)."""
    if (args.tenant is None) != (args.intents is None):
        sys.stderr.write("error: --tenant and --intents go together\n")
        return 2
    if args.tenant is not None and args.out is not None:
        sys.stderr.write("error: --out writes the default heads; a tenant's go to the data dir\n")
        return 2
    from core.errors import ConciergeError
    from models.classifiers import (
        TrainingReport,
        classifiers_dir,
        train_classifiers,
        train_shipped_heads,
        train_tenant_intents,
    )
    from models.embedder import Embedder, EmbedderConfig

    def say(line: str) -> None:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    embedder = Embedder(
        EmbedderConfig(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
        )
    )
    out_dir = classifiers_dir(Path(settings.data_dir))
    try:
        report: TrainingReport
        if args.tenant is not None:
            say(f"training the intent head of tenant {args.tenant} from {args.intents}")
            report = train_tenant_intents(embedder, args.intents, out_dir, args.tenant)
        else:
            source = Path(args.source or settings.training_data_dir)
            say(f"training classifiers from {source}")
            if args.out is not None:
                report = train_shipped_heads(
                    embedder, source, args.out, force=args.force, progress=say
                )
            else:
                report = train_classifiers(
                    embedder, source, out_dir, force=args.force, progress=say
                )
    except ConciergeError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
    finally:
        embedder.shutdown()
    for line in report.lines():
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

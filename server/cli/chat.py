"""``concierge chat``: a one-shot answer from a running server, or from an engine in-process."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from server.config import Settings


def add_chat_commands(commands: Any) -> None:
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
    import httpx

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

"""Building the support side once per process: stores, catalog, tenants, classifiers,
the token counter and the reply pipeline, on top of the retrieval objects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from models.classifiers import Classifiers, ClassifiersUnavailableError, classifiers_dir
from models.engine.base import EngineClient
from models.prepare import models_dir
from models.registry import ModelRegistry, ModelTask
from server.config import Settings
from server.errors import ModelNotFoundError
from server.knowledge_service import Retrieval
from server.pipeline.reply import PipelineSettings, ReplyPipeline, Stores
from server.pipeline.tokens import TokenCounter, load_token_counter
from server.pipeline.webhook import TicketNotifier
from server.support_service import SupportService
from server.tenants import TenantConfigs

log = logging.getLogger(__name__)


@dataclass
class Support:
    service: SupportService
    pipeline: ReplyPipeline
    tenants: TenantConfigs


class ClassifierSlot:
    """Loads the classifiers once they exist; until then every reply gets a clear 503.

    Training (``concierge models train-classifiers``) may finish after the server
    started, so a failed load is retried on the next request instead of for ever.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._loaded: Classifiers | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Classifiers:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = Classifiers.load(self._directory)
            return self._loaded


def pipeline_settings(settings: Settings) -> PipelineSettings:
    return PipelineSettings(
        reply_max_tokens=settings.reply_max_tokens,
        reply_temperature=settings.reply_temperature,
        reply_frequency_penalty=settings.reply_frequency_penalty,
        reply_presence_penalty=settings.reply_presence_penalty,
        memory_turns=settings.memory_turns,
        memory_summary_chars=settings.memory_summary_chars,
        kb_passages=settings.kb_passages,
        grounding_min_similarity=settings.grounding_min_similarity,
        history_hits=settings.history_hits,
    )


def served_model_folder(settings: Settings) -> Path | None:
    """The prepared folder of the generation model, where its tokenizer lives."""
    try:
        spec = ModelRegistry().resolve(settings.model, ModelTask.GENERATE)
    except ModelNotFoundError:
        return None
    folder = models_dir(settings.data_dir) / spec.name
    return folder if folder.is_dir() else None


@contextlib.asynccontextmanager
async def running_support(
    settings: Settings, retrieval: Retrieval, engine: EngineClient
) -> AsyncIterator[Support]:
    service = SupportService.over(
        retrieval.database, retrieval.embedder, retrieval.history, retrieval.keyring
    )
    customers, conversations, catalog = service.customers, service.conversations, service.catalog
    tenants = TenantConfigs(settings.effective_tenants_dir)
    classifiers = ClassifierSlot(classifiers_dir(settings.data_dir))
    counter: TokenCounter = await asyncio.to_thread(
        load_token_counter, served_model_folder(settings)
    )
    notifier = TicketNotifier(conversations)
    pipeline = ReplyPipeline(
        settings=pipeline_settings(settings),
        engine=engine,
        embedder=retrieval.embedder,
        knowledge=retrieval.knowledge,
        history=retrieval.history,
        catalog=catalog,
        stores=Stores(customers, conversations),
        tenants=tenants,
        notifier=notifier,
        token_counter=counter,
        classifiers=classifiers,
    )
    background = [asyncio.create_task(asyncio.to_thread(_warm_up, pipeline))]
    if settings.conversation_retention_days is not None:
        background.append(
            asyncio.create_task(
                enforce_retention(
                    service,
                    settings.conversation_retention_days,
                    settings.retention_check_interval_s,
                )
            )
        )
    try:
        yield Support(service, pipeline, tenants)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await pipeline.close()


async def enforce_retention(service: SupportService, days: float, interval_s: float) -> None:
    """Purge expired conversations at start-up and then every ``interval_s``."""
    while True:
        try:
            removed = await asyncio.to_thread(service.purge_expired_sync, days)
        except Exception:
            log.exception("retention purge failed; retrying in %.0f s", interval_s)
        else:
            if any(removed.values()):
                log.info("retention (%g days) purged %s", days, removed)
        await asyncio.sleep(interval_s)


def _warm_up(pipeline: ReplyPipeline) -> None:
    try:
        pipeline.warm_up_sync()
    except ClassifiersUnavailableError as exc:
        log.warning("support replies are unavailable until classifiers exist: %s", exc.message)
    except Exception:
        log.exception("warming up the reply pipeline failed")

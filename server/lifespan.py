"""The lifespan: the one place that maps Settings onto components and builds each once.

Heavy objects (the engine, the embedder, the KB indexes, the database, the reply
pipeline) are built here at start-up, injected through ``app.state``, and closed at exit.
The engine starts in the background so ``/healthz`` answers at once and ``/readyz`` can
say 503 until the model is loaded, which is what load balancers and Kubernetes probes
expect from a server whose start-up takes tens of seconds. The CLI uses the same
builders (``build_engine``, ``build_retrieval``) so a command and the server agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import faiss
from fastapi import FastAPI

from core import metrics
from core.crypto import Keyring, open_keyring
from core.db import create_database_engine
from core.errors import EngineUnavailableError, ModelNotFoundError
from core.gc_pauses import freeze_startup_heap, watch_gc_pauses
from core.job_records import JobRecords
from core.pending_work import PendingWork
from models.classifiers import ClassifiersUnavailableError, classifiers_dir
from models.classifiers.slot import ClassifierSlot
from models.embedder import Embedder, EmbedderConfig
from models.engine.base import EngineClient
from models.engine.openai_remote import OpenAIRemoteEngine, RemoteConfig
from models.engine.vllm_local import VllmLocalConfig, VllmLocalEngine
from models.prepare import models_dir
from models.registry import HubModel, LocalFolder, ModelRegistry, ModelTask
from models.tenant_embedders import TenantEmbedders
from retrieval.catalog import ProductCatalog
from retrieval.documents import DocumentStore
from retrieval.history import CustomerHistory
from retrieval.jobs import ReindexJobs
from retrieval.knowledge import Fusion, KnowledgeBase, RetrievalConfig, SearchMode
from retrieval.runtime import Retrieval
from server.config import EngineKind, Environment, Settings
from server.gate.engine_gate import EngineGate
from server.pipeline.profile import ProfileBuilder
from server.pipeline.reply import PipelineSettings, ReplyPipeline, Stores
from server.pipeline.rerank import PassageReranker
from server.pipeline.tokens import TokenCounter, load_token_counter
from server.pipeline.webhook import TicketNotifier
from server.security.access import access_control_for
from server.security.outbound import WebhookPolicy
from server.services.catalog import CatalogService
from server.services.conversations import ConversationService
from server.services.customers import CustomerService
from server.services.embeddings import EmbeddingService
from server.services.generation import GenerationService
from server.services.intents import IntentService
from server.services.knowledge import KnowledgeService
from server.store.analytics import ConversationAnalytics
from server.store.audit import AuditLog
from server.store.conversations import ConversationStore
from server.store.customers import CustomerStore
from server.store.feedback import FeedbackStore
from server.store.schema import create_schema
from server.store.tickets import TicketStore
from server.tenants import TenantConfigs

log = logging.getLogger(__name__)

HEALTH_WATCH_INTERVAL_S = 5.0


@contextlib.asynccontextmanager
async def serving(
    app: FastAPI, settings: Settings, engine: EngineClient | None = None
) -> AsyncIterator[None]:
    """Build every heavy object once, put it on ``app.state``, and close it all at exit.

    ``engine`` serves an already-built engine (tests, embedding); otherwise one is built
    from the settings. The engine starts in the background so ``/healthz`` answers at once.
    """
    await asyncio.to_thread(import_model_libraries)
    metrics.TENANT_LABELS.configure(
        tuple(settings.metrics_tenants),
        settings.effective_tenants_dir,
        (settings.default_tenant,),
    )
    metrics.watch_gpu_memory()
    active = engine or build_engine(settings)
    gate = EngineGate(active, app.state.admission)  # every generation goes through it
    app.state.engine = active
    app.state.engine_start_error = None
    app.state.generation = GenerationService(
        gate, model_aliases=(settings.model,), max_output_tokens=settings.max_output_tokens
    )
    metrics.ENGINE_READY.set(0)
    watch_gc_pauses()
    tasks = [
        asyncio.create_task(_start_engine(app, active), name="engine-start"),
        asyncio.create_task(_watch_engine(active), name="engine-watch"),
    ]
    try:
        async with running_retrieval(settings) as retrieval:
            app.state.retrieval = retrieval
            if settings.engine is EngineKind.VLLM_LOCAL:  # the engine computes on our cores
                admission = app.state.admission
                retrieval.embedder.share_cores_while(lambda: admission.running > 0)
            app.state.knowledge_service = KnowledgeService(retrieval)
            app.state.embedding_service = EmbeddingService(
                retrieval.embedder, settings.max_embedding_inputs, (settings.embedding_model,)
            )
            async with running_support(settings, retrieval, gate) as support_side:
                app.state.customer_service = support_side.services.customers
                app.state.catalog_service = support_side.services.catalog
                app.state.conversation_service = support_side.services.conversations
                app.state.reply_pipeline = support_side.pipeline
                app.state.tenant_configs = support_side.tenants
                app.state.intent_service = IntentService(
                    retrieval.embedder, support_side.classifiers, retrieval.jobs
                )
                app.state.audit_log = AuditLog(retrieval.database)
                app.state.access = await asyncio.to_thread(
                    access_control_for, settings, retrieval.database
                )
                yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await active.shutdown()
        metrics.ENGINE_READY.set(0)


def build_engine(settings: Settings, registry: ModelRegistry | None = None) -> EngineClient:
    """A not-yet-started engine; ``start()`` does the heavy loading."""
    if settings.engine is EngineKind.OPENAI_REMOTE:
        secret = settings.remote_api_key
        return OpenAIRemoteEngine(
            RemoteConfig(
                base_urls=tuple(str(url) for url in settings.remote_urls),
                served_model_name=settings.served_model_name,
                api_key=secret.get_secret_value() if secret else None,
                request_timeout_s=settings.remote_timeout_s,
                health_interval_s=settings.remote_health_interval_s,
            )
        )
    spec = (registry or ModelRegistry()).resolve(settings.model, ModelTask.GENERATE)
    kv_bytes = (
        int(settings.kv_cache_memory_gib * (1 << 30))
        if settings.kv_cache_memory_gib is not None
        else None
    )
    return VllmLocalEngine(
        VllmLocalConfig(
            model=spec,
            data_dir=settings.data_dir,
            served_model_name=settings.served_model_name or spec.name,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            kv_cache_memory_bytes=kv_bytes,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            tensor_parallel_size=settings.tensor_parallel_size,
            enforce_eager=settings.enforce_eager,
            max_num_seqs=settings.max_num_seqs,
            max_num_batched_tokens=settings.max_num_batched_tokens,
            cpu_reserved_cores=settings.cpu_reserved_cores,
        )
    )


def load_keyring(settings: Settings) -> Keyring:
    """The process's keyring: ``CONCIERGE_ENCRYPTION_KEY`` if set, else the key file."""
    secret = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    return open_keyring(
        secret,
        settings.effective_encryption_key_file,
        production=settings.environment is Environment.PRODUCTION,
    )


def retrieval_config(settings: Settings) -> RetrievalConfig:
    return RetrievalConfig(
        chunk_max_chars=settings.chunk_max_chars,
        chunk_overlap_chars=settings.chunk_overlap_chars,
        keep_versions=settings.index_keep_versions,
        title_weight=settings.retrieval_title_weight,
        candidates=settings.retrieval_candidates,
        fusion=Fusion(settings.retrieval_fusion),
        lexical_weight=settings.retrieval_lexical_weight,
        default_mode=SearchMode(settings.retrieval_mode),
    )


def build_retrieval(settings: Settings) -> Retrieval:
    """Database, embedder (not loaded yet), KB and history over the data directory."""
    faiss.omp_set_num_threads(settings.faiss_threads)
    database = create_database_engine(settings.effective_database_url)
    create_schema(database)
    keyring = load_keyring(settings)
    embedder = Embedder(
        EmbedderConfig(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
            threads=settings.embedding_threads,
            data_dir=Path(settings.data_dir),
            one_wide_thread=True,
        )
    )
    knowledge = KnowledgeBase(
        Path(settings.data_dir) / "retrieval",
        DocumentStore(database),
        embedder,
        retrieval_config(settings),
        tuned=TenantEmbedders(embedder, Path(settings.data_dir)),
    )
    return Retrieval(
        database,
        embedder,
        knowledge,
        CustomerHistory(database, embedder, keyring),
        ReindexJobs(knowledge, PendingWork(database), JobRecords(database)),
        keyring,
    )


@contextlib.asynccontextmanager
async def running_retrieval(settings: Settings) -> AsyncIterator[Retrieval]:
    """Build retrieval, load the embedder and indexes in the background, close at exit."""
    retrieval = await asyncio.to_thread(build_retrieval, settings)
    retrieval.jobs.start_sync()  # jobs' rows kept current, other replicas' dead jobs swept
    tasks = [
        asyncio.create_task(_warm_up_retrieval(retrieval), name="retrieval-warm-up"),
        asyncio.create_task(
            _watch_published_versions(retrieval.knowledge, settings.index_refresh_interval_s),
            name="index-refresh",
        ),
    ]
    try:
        yield retrieval
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await retrieval.jobs.shutdown()
        retrieval.knowledge.shutdown()
        retrieval.embedder.shutdown()
        retrieval.database.dispose()


async def _warm_up_retrieval(retrieval: Retrieval) -> None:
    try:
        await asyncio.to_thread(retrieval.embedder.warm_up)
        knowledge = retrieval.knowledge
        for tenant in await asyncio.to_thread(knowledge.tenants):
            number = await asyncio.to_thread(knowledge.version_number, tenant)
            if number is None and knowledge.shared:
                # documents but no shared index yet (upgraded from version folders): owed
                documents = await asyncio.to_thread(knowledge.store.count, tenant)
                if documents:
                    await asyncio.to_thread(retrieval.jobs.promise, tenant)
    except Exception:
        log.exception("loading the embedder or the indexes failed")
    await asyncio.to_thread(freeze_startup_heap)  # the embedder and indexes live for good
    await retrieval.jobs.resume_owed()  # what a crash or a failure left undone


async def _watch_published_versions(knowledge: KnowledgeBase, interval_s: float) -> None:
    """Serve versions that another process (``concierge kb reindex``) published."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            for tenant in await asyncio.to_thread(knowledge.tenants):
                await asyncio.to_thread(knowledge.refresh, tenant)
        except Exception:
            log.exception("checking for new index versions failed")


@dataclass
class SupportServices:
    """The services behind the customer, catalog and conversation routes, on one database."""

    customers: CustomerService
    catalog: CatalogService
    conversations: ConversationService


def build_support_services(retrieval: Retrieval) -> SupportServices:
    """Stores on the retrieval database (customer text encrypted with its keyring)."""
    customers = CustomerStore(retrieval.database, retrieval.keyring)
    conversations = ConversationStore(retrieval.database, retrieval.keyring)
    catalog = ProductCatalog(retrieval.database, retrieval.embedder)
    profiles = ProfileBuilder(customers, conversations, catalog)
    return SupportServices(
        CustomerService(customers, conversations, retrieval.history, profiles),
        CatalogService(catalog),
        ConversationService(
            conversations,
            TicketStore(retrieval.database, retrieval.keyring),
            FeedbackStore(retrieval.database, retrieval.keyring),
            ConversationAnalytics(retrieval.database, retrieval.keyring),
            retrieval.history,
        ),
    )


@dataclass
class Support:
    services: SupportServices
    pipeline: ReplyPipeline
    tenants: TenantConfigs
    classifiers: ClassifierSlot  # the pipeline's: a tenant head trained over HTTP joins it


def grounding_similarity(settings: Settings) -> float:
    """The configured floor, else the one calibrated for the embedding model (registry);
    a model the registry does not name (a folder, a hub id) gets MiniLM's 0.35."""
    if settings.grounding_min_similarity is not None:
        return settings.grounding_min_similarity
    return ModelRegistry().resolve(settings.embedding_model, ModelTask.EMBED).grounding_similarity


def pipeline_settings(settings: Settings) -> PipelineSettings:
    return PipelineSettings(
        reply_max_tokens=settings.reply_max_tokens,
        reply_temperature=settings.reply_temperature,
        reply_frequency_penalty=settings.reply_frequency_penalty,
        reply_presence_penalty=settings.reply_presence_penalty,
        memory_turns=settings.memory_turns,
        memory_summary_chars=settings.memory_summary_chars,
        kb_passages=settings.kb_passages,
        prompt_sentences=settings.prompt_sentences,
        grounding_min_similarity=grounding_similarity(settings),
        history_hits=settings.history_hits,
        profile_fact_tokens=settings.profile_fact_tokens,
        reply_check=settings.reply_check,
        reply_min_support=settings.reply_min_support,
        as_of=settings.reply_as_of.timestamp() if settings.reply_as_of else None,
    )


def build_reranker(settings: Settings, gate: EngineGate) -> PassageReranker | None:
    """The LLM passage judge when ``rerank=llm``; None keeps the retrieval order."""
    if settings.rerank != "llm":
        return None
    return PassageReranker(gate, settings.rerank_candidates, settings.rerank_timeout_s)


def served_tokenizer_source(settings: Settings) -> Path | str | None:
    """Where the generation model's tokenizer loads from: its prepared folder, the folder
    it was given as, or its hub id; None when a registered model is not prepared here."""
    try:
        spec = ModelRegistry().resolve(settings.model, ModelTask.GENERATE)
    except ModelNotFoundError:
        return None
    if isinstance(spec.source, LocalFolder):  # a folder given by path holds its own tokenizer
        return spec.source.path
    if isinstance(spec.source, HubModel):
        return spec.source.repo_id
    folder = models_dir(settings.data_dir) / spec.name
    return folder if folder.is_dir() else None


@contextlib.asynccontextmanager
async def running_support(
    settings: Settings, retrieval: Retrieval, gate: EngineGate
) -> AsyncIterator[Support]:
    services = build_support_services(retrieval)
    customers = services.customers.customers
    conversations = services.conversations.conversations
    catalog = services.catalog.catalog
    webhook_policy = WebhookPolicy.for_deployment(
        settings.environment is Environment.PRODUCTION, settings.webhook_allowed_hosts
    )
    tenants = TenantConfigs(settings.effective_tenants_dir, webhook_policy)
    classifiers = ClassifierSlot(
        classifiers_dir(settings.data_dir),
        settings.embedding_model,
        data_dir=Path(settings.data_dir),
    )
    counter: TokenCounter = await asyncio.to_thread(
        load_token_counter, served_tokenizer_source(settings)
    )
    notifier = TicketNotifier(
        services.conversations.ticket_store,
        webhook_policy,
        config_of=lambda tenant: tenants.get(tenant).webhook,
    )
    notifier.start_sweeps()  # what a crash or a restart left undelivered
    pipeline = ReplyPipeline(
        settings=pipeline_settings(settings),
        gate=gate,
        embedder=retrieval.embedder,
        knowledge=retrieval.knowledge,
        history=retrieval.history,
        catalog=catalog,
        stores=Stores(customers, conversations),
        tenants=tenants,
        notifier=notifier,
        token_counter=counter,
        classifiers=classifiers,
        reranker=build_reranker(settings, gate),
    )
    background = [asyncio.create_task(asyncio.to_thread(_warm_up_pipeline, pipeline))]
    if settings.conversation_retention_days is not None:
        background.append(
            asyncio.create_task(
                enforce_retention(
                    services.conversations,
                    settings.conversation_retention_days,
                    settings.retention_check_interval_s,
                )
            )
        )
    try:
        yield Support(services, pipeline, tenants, classifiers)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await pipeline.close()


async def enforce_retention(service: ConversationService, days: float, interval_s: float) -> None:
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


def _warm_up_pipeline(pipeline: ReplyPipeline) -> None:
    try:
        pipeline.warm_up_sync()
    except ClassifiersUnavailableError as exc:
        log.warning(
            "support replies are unavailable until a classifier set fits the embedder: %s",
            exc.message,
        )
    except Exception:
        log.exception("warming up the reply pipeline failed")
    freeze_startup_heap()  # the classifiers, lexicons and tokenizer live for good


def import_model_libraries() -> None:
    """Import the model libraries once, in one thread, before anything loads a model.

    The engine, the embedder and the prompt tokenizer then load in parallel threads. A
    package's first import is not safe to race: a second thread can get the half-built
    module (seen as "cannot import name ... from partially initialized module
    'accelerate'", killing the server at start-up about one time in two under load).
    """
    import accelerate  # noqa: F401
    import sentence_transformers  # noqa: F401
    import transformers  # noqa: F401


async def _start_engine(app: FastAPI, engine: EngineClient) -> None:
    try:
        await engine.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("engine failed to start")
        app.state.engine_start_error = f"{type(exc).__name__}: {exc}"
        return
    # before ready: the one long collection of the start-up heap stalls no request
    await asyncio.to_thread(freeze_startup_heap)
    metrics.ENGINE_READY.set(1 if engine.ready else 0)


async def _watch_engine(engine: EngineClient) -> None:
    """Keep ``concierge_engine_ready`` true to the engine's health, and log transitions."""
    was_ready = False
    while True:
        await asyncio.sleep(HEALTH_WATCH_INTERVAL_S)
        try:
            await engine.check_health()
            ready = True
        except EngineUnavailableError as exc:
            ready = False
            if was_ready:
                log.error("engine became unavailable: %s", exc.message)
        metrics.ENGINE_READY.set(int(ready))
        was_ready = ready

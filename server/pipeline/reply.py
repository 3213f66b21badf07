"""The reply pipeline: one customer message in, one personalized, grounded reply out.

``prepare`` runs every stage before generation (analyze, recall, retrieve, decide,
recommend, rerank when configured, compose) and raises client errors there, so a
streaming request still gets a proper 4xx status. ``start`` then opens the generation
through the engine gate (admission and the first chunk, so overload is a 503 before any
byte of the body) and returns the events: a ``ReplyMeta`` (analysis, citations,
recommendations, escalation decision), ``ReplyToken`` deltas, and the ``ReplyOut`` (the
whole response, the same object the JSON endpoint returns). The turn is committed before
the ``ReplyOut`` is yielded: a client that saw it knows its turn is stored.

CPU-bound stages run in worker threads: the analysis in the embedder's executor (it
embeds), store reads and FAISS searches in the default thread pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar, get_args

from core import metrics
from core.errors import ClientClosedRequestError, ConciergeError
from core.ids import new_id
from models.classifiers import Classifiers, ClassifiersUnavailableError
from models.classifiers.training_data import SENTIMENT_LABEL_NAMES
from models.embedder import Embedder
from models.engine.base import SamplingOptions
from retrieval.catalog import ProductCatalog
from retrieval.history import CustomerHistory
from retrieval.knowledge import KnowledgeBase
from server.gate.engine_gate import Admission, DisconnectCheck, EngineGate, GenerationCall
from server.pipeline.analyze import Analysis, Analyzer
from server.pipeline.answer import (
    ReplyEvent,
    ReplyReplace,
    ReplyToken,
    answered_by,
    reply_meta,
    reply_out,
)
from server.pipeline.composed import focused_passages
from server.pipeline.escalation import (
    EscalationDecision,
    EscalationReason,
    decide_escalation,
    earlier_signals,
    next_signals,
)
from server.pipeline.memory import ConversationMemory, Memory
from server.pipeline.persist import ReplyRecorder
from server.pipeline.prepared import PipelineSettings, PreparedReply, ReplyRequest, Stores
from server.pipeline.profile import CustomerProfile, ProfileBuilder
from server.pipeline.prompt import PromptInputs, compose_prompt
from server.pipeline.recommend import recommend_sync, should_recommend
from server.pipeline.reply_check import NOT_CHECKED, checked, sentence_embedder, sentence_focus
from server.pipeline.rerank import PassageReranker
from server.pipeline.retrieve import follow_up_query, retrieve_sync
from server.pipeline.tokens import TokenCounter
from server.pipeline.webhook import TicketNotifier
from server.security.privacy import redact_text
from server.store.conversations import Conversation, ConversationMode
from server.tenants import Priority, TenantConfig, TenantConfigs
from server.voice import localized

REPLY_OUTCOMES = ("answered", "handed_over", "human_queue", "aborted", "error")
"""Label values of ``concierge_replies_total`` (see ``core/metrics.py``)."""

log = logging.getLogger(__name__)


class ReplyPipeline:
    """Runs the stages for one message; built once per process in the lifespan."""

    def __init__(
        self,
        *,
        settings: PipelineSettings,
        gate: EngineGate,
        embedder: Embedder,
        knowledge: KnowledgeBase,
        history: CustomerHistory,
        catalog: ProductCatalog,
        stores: Stores,
        tenants: TenantConfigs,
        notifier: TicketNotifier,
        token_counter: TokenCounter,
        classifiers: Callable[[], Classifiers],
        reranker: PassageReranker | None = None,
    ) -> None:
        self.settings = settings
        self._gate = gate
        self._embedder = embedder
        self._knowledge = knowledge
        self._history = history
        self._catalog = catalog
        self._stores = stores
        self._tenants = tenants
        self._counter = token_counter
        self._classifiers = classifiers
        self._reranker = reranker
        self._memory = ConversationMemory(
            stores.conversations, settings.memory_turns, settings.memory_summary_chars
        )
        self._profiles = ProfileBuilder(stores.customers, stores.conversations, catalog)
        self._recorder = ReplyRecorder(stores.conversations, self._memory, history, notifier)
        metrics.export_at_zero(metrics.ESCALATIONS, "reason", [r.value for r in EscalationReason])
        metrics.export_at_zero(metrics.TICKETS, "priority", list(get_args(Priority)))
        metrics.export_at_zero(metrics.REPLIES, "outcome", REPLY_OUTCOMES)
        metrics.export_at_zero(metrics.SENTIMENT, "label", SENTIMENT_LABEL_NAMES)

    # ------------------------------------------------------------------ before tokens

    async def admit(self) -> Admission:
        """The reply's slot in the engine, taken before any stage runs.

        Embedding, retrieval and composing cost tens to hundreds of milliseconds of CPU;
        a reply that is going to be shed must not spend them first. So admission comes
        first, the slot is held through ``prepare`` (which bounds how many pipelines run
        at once, too) and handed to ``start``; a shed reply costs only its validation.
        """
        try:
            return await self._gate.admit("support")
        except ConciergeError:
            metrics.REPLIES.labels(outcome="error").inc()
            raise

    async def prepare(
        self, request: ReplyRequest, admission: Admission | None = None
    ) -> PreparedReply:
        """Analyse, recall, retrieve and compose for ``request``.

        The message is redacted first: every later stage (the prompt, the stored turn,
        the history index, ticket transcripts) sees ``j***@example.com``, never the
        address, and the model can still tell the customer which one it means.
        ``admission`` is the reply's slot from ``admit``: the reranker judges under it.
        """
        started = time.perf_counter()
        request = replace(request, message=redact_text(request.message, where="message"))
        config = self._tenants.get(request.tenant)
        analyzer = Analyzer(
            self._embedder, self._load_classifiers(), self._knowledge.query_embedder
        )
        analysis_task = asyncio.get_running_loop().run_in_executor(
            self._embedder.executor,
            _timed(analyzer.analyze_sync),
            request.tenant,
            request.message,
            request.locale,
            config.intents.min_confidence,
        )
        now = self._today(request, config)
        recall_task = asyncio.to_thread(_timed(self._recall_sync), request, now)
        (
            (analysis, analysis_seconds),
            ((conversation, memory, profile, facts), recall_seconds),
        ) = await asyncio.gather(analysis_task, recall_task)
        prepared = PreparedReply(
            request=request,
            config=config,
            conversation=conversation,
            turn_id=new_id("turn"),
            seq=conversation.turn_count + 1,
            analysis=analysis,
            memory=memory,
            profile=profile,
            facts=facts,
            now=now,
            retrieved=None,
            signals=earlier_signals(
                memory,
                conversation.negative_streak,
                conversation.ungrounded_streak,
                handed_over=conversation.ticket_id is not None,
            ),
            decision=EscalationDecision(False),
            recommendations=[],
            prompt=None,
            started=started,
        )
        for name, seconds in (("analysis", analysis_seconds), ("recall", recall_seconds)):
            prepared.timings[name] = round(seconds * 1000, 2)
            metrics.PIPELINE_STAGE_DURATION.labels(stage=name).observe(seconds)
        _count_analysis(analysis)
        mark = time.perf_counter()
        if conversation.mode is ConversationMode.HUMAN:
            return prepared  # a person owns the conversation: nothing more to decide
        personalize = profile is not None and profile.customer.allows("personalization")
        context_query = follow_up_query(memory.last_question(), request.message)
        context_vector = None
        if context_query is not None:  # searched in the KB only: by the KB's own embedder
            kb_embedder = self._knowledge.query_embedder(request.tenant)  # loaded by analysis
            context_vector = (await kb_embedder.embed([context_query], purpose="query"))[0]
        prepared.retrieved = await asyncio.to_thread(
            retrieve_sync,
            self._knowledge,
            self._history,
            tenant=request.tenant,
            customer_id=request.customer_id,
            message=request.message,
            vector=analysis.vector,
            kb_vector=analysis.kb_query_vector,
            passages=self._passages_retrieved(),
            min_similarity=self.settings.grounding_min_similarity,
            history_hits=self.settings.history_hits,
            personalize=personalize,
            context_query=context_query,
            context_vector=context_vector,
        )
        mark = prepared.stage("retrieval", mark)
        prepared.signals = next_signals(
            prepared.signals,
            analysis,
            request.message,
            prepared.seq,
            grounded=prepared.retrieved.grounded,
        )
        prepared.decision = decide_escalation(
            config.escalation,
            request.message,
            analysis,
            prepared.signals,
            profile.recent_orders if profile is not None else (),
        )
        if prepared.decision.escalate:
            prepared.ticket_id = new_id("tkt")
        refusal = should_recommend(
            config.recommendations,
            request.message,
            analysis,
            profile,
            prepared.decision,
            prepared.signals,
        )
        if refusal is None:
            prepared.recommendations = await asyncio.to_thread(
                recommend_sync,
                self._catalog,
                request.tenant,
                config.recommendations,
                analysis,
                profile,
            )
        else:
            log.debug("no recommendations: %s", refusal)
        mark = prepared.stage("recommend", mark)
        passages = prepared.retrieved.passages
        if prepared.decision.model_answers and self._reranker is not None and len(passages) > 1:
            earlier = memory.last_question() if context_query is not None else None
            passages = await self._reranker.rerank(
                request.message, passages, earlier, held=admission
            )
            mark = prepared.stage("rerank", mark)
        prepared.retrieved = replace(
            prepared.retrieved, passages=passages[: self.settings.kb_passages]
        )
        if prepared.decision.model_answers:
            prompt_passages = prepared.retrieved.passages
            if self.settings.prompt_sentences and prompt_passages:
                prepared.focus = await sentence_focus(
                    prepared, prompt_passages, sentence_embedder(self._knowledge, request.tenant)
                )
                prompt_passages = focused_passages(
                    prompt_passages,
                    prepared.focus.found,
                    prepared.focus.ranked,
                    self.settings.prompt_sentences,
                )
                mark = prepared.stage("focus", mark)
            prepared.prompt = compose_prompt(
                PromptInputs(
                    voice=config.voice,
                    message=request.message,
                    analysis=analysis,
                    passages=prompt_passages,
                    facts=facts,
                    now=now,
                    history=prepared.retrieved.history,
                    memory=memory,
                    recommendations=prepared.recommendations,
                    decision=prepared.decision,
                ),
                self._counter,
                self._prompt_budget(),
            )
            for kind, count in prepared.prompt.dropped.items():
                metrics.PROMPT_PARTS_DROPPED.labels(kind=kind).inc(count)
            metrics.REPLY_PROMPT_TOKENS.observe(prepared.prompt.prompt_tokens)
        prepared.stage("prompt", mark)
        return prepared

    def _passages_retrieved(self) -> int:
        """KB hits fetched per reply: the prompt's share, or the reranker's candidates when
        it judges more than that."""
        if self._reranker is None:
            return self.settings.kb_passages
        return max(self.settings.kb_passages, self._reranker.candidates)

    def warm_up_sync(self) -> None:
        """Load the classifiers, the lexicon and the language model before the first reply,
        which would otherwise pay seconds for them."""
        Analyzer(self._embedder, self._classifiers()).analyze_sync(
            None, "Hello, where is my order? It has not arrived yet."
        )

    def _load_classifiers(self) -> Classifiers:
        try:
            return self._classifiers()
        except ClassifiersUnavailableError:
            metrics.REPLIES.labels(outcome="error").inc()
            raise

    def _today(self, request: ReplyRequest, config: TenantConfig) -> dt.datetime:
        """'Today' in the tenant's time zone: the request's as_of, the setting, the clock."""
        moment = request.as_of or self.settings.as_of or time.time()
        return dt.datetime.fromtimestamp(moment, config.business.zone)

    def _recall_sync(
        self, request: ReplyRequest, now: dt.datetime
    ) -> tuple[Conversation, Memory, CustomerProfile | None, list[str]]:
        """The conversation (404 when it is not this customer's), its memory, the profile
        and the facts of the customer's record that bear on this message."""
        conversation = self._stores.conversations.open(
            request.tenant,
            request.customer_id,
            request.conversation_id,
            request.channel,
            request.locale or "",
        )
        memory = self._memory.recall_sync(conversation)
        customer = self._stores.customers.get(request.tenant, request.customer_id)
        profile = self._profiles.load_sync(customer) if customer is not None else None
        facts = (
            profile.facts_for(
                request.message, now, self.settings.profile_fact_tokens, self._counter.count
            )
            if profile is not None
            else []
        )
        return conversation, memory, profile, facts

    def _prompt_budget(self) -> int:
        context = self._gate.model_info.max_model_len or 2048
        return max(256, context - self.settings.reply_max_tokens)

    # ------------------------------------------------------------------ tokens and after

    async def start(
        self,
        prepared: PreparedReply,
        disconnected: DisconnectCheck | None = None,
        admission: Admission | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        """Open the generation (admission and first chunk), then hand out the events.

        Overload, deadlines and engine refusals are raised here, before the caller has
        sent a status, so a streaming reply that is shed answers 503 like chat does.
        ``disconnected`` is polled while tokens come (a JSON answer); a streaming
        response needs none, because the server cancels its body when the client leaves.
        """
        call = None
        if prepared.prompt is not None:
            options = SamplingOptions(
                max_tokens=self.settings.reply_max_tokens,
                temperature=self.settings.reply_temperature,
                frequency_penalty=self.settings.reply_frequency_penalty,
                presence_penalty=self.settings.reply_presence_penalty,
                seed=prepared.request.seed,
            )
            try:
                call = await self._gate.open(
                    "support",
                    prepared.prompt.messages,
                    options,
                    admission=admission,
                    started=prepared.started,
                    request_id=f"reply-{uuid.uuid4().hex}",
                    affinity=prepared.conversation.conversation_id,
                )
            except ConciergeError:
                metrics.REPLIES.labels(outcome="error").inc()
                raise
        elif admission is not None:
            admission.release()  # nothing to generate: a fixed reply
        return self._events(prepared, call, disconnected)

    async def _events(
        self,
        prepared: PreparedReply,
        call: GenerationCall | None,
        disconnected: DisconnectCheck | None,
    ) -> AsyncIterator[ReplyEvent]:
        """``ReplyMeta``, ``ReplyToken``... and ``ReplyOut`` (after the turn is committed)."""
        yield reply_meta(prepared)
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        if call is not None:
            parts: list[str] = []
            mark = time.perf_counter()
            try:
                async for chunk in call.chunks(disconnected):
                    usage = {
                        "prompt_tokens": chunk.prompt_tokens,
                        "completion_tokens": chunk.output_tokens,
                    }
                    if chunk.text:
                        if not parts:
                            prepared.stage("time_to_first_token", prepared.started)
                        parts.append(chunk.text)
                        yield ReplyToken(chunk.text)
            except (ClientClosedRequestError, asyncio.CancelledError, GeneratorExit):
                metrics.REPLIES.labels(outcome="aborted").inc()
                raise
            except ConciergeError:  # engine failures, and the deadline or a drain (504, 503)
                metrics.REPLIES.labels(outcome="error").inc()
                raise
            prepared.stage("generation", mark)
            mark = time.perf_counter()
            written = "".join(parts).strip()
            reply, grounding = await checked(
                prepared,
                written,
                self.settings.reply_check,
                self.settings.reply_min_support,
                sentence_embedder(self._knowledge, prepared.request.tenant),
            )
            prepared.stage("check", mark)
            if grounding.fallback:
                yield ReplyReplace(reply)
            if prepared.decision.escalate:  # the model answered; the hand-over follows
                handover = handover_text(prepared)
                yield ReplyToken("\n\n" + handover)
                reply = f"{reply}\n\n{handover}" if reply else handover
                grounding = grounding.followed_by(handover)
        else:
            reply = self._fixed_reply(prepared)
            grounding = NOT_CHECKED
            yield ReplyToken(reply)
        mark = time.perf_counter()
        conversation, ticket = await asyncio.to_thread(
            self._recorder.record_sync, prepared, reply, answered_by(prepared), usage
        )
        prepared.stage("persist", mark)
        total = time.perf_counter() - prepared.started
        prepared.timings["total"] = round(total * 1000, 2)
        metrics.PIPELINE_STAGE_DURATION.labels(stage="total").observe(total)
        self._recorder.after_commit(prepared, ticket, reply)
        yield reply_out(prepared, conversation, ticket, reply, usage, grounding.as_dict())

    def _fixed_reply(self, prepared: PreparedReply) -> str:
        if prepared.conversation.mode is ConversationMode.HUMAN:
            voice = prepared.config.voice
            text = localized(voice.human_mode_ack, prepared.analysis.language.code, voice.languages)
            return text.replace("{ticket_id}", prepared.conversation.ticket_id or "")
        return handover_text(prepared)

    async def close(self) -> None:
        await self._recorder.close()


_T = TypeVar("_T")


def handover_text(prepared: PreparedReply) -> str:
    """The tenant's hand-over message in the customer's language, with the ticket's id."""
    voice = prepared.config.voice
    text = localized(voice.handover_message, prepared.analysis.language.code, voice.languages)
    return text.replace("{ticket_id}", prepared.ticket_id or "")


def _timed(function: Callable[..., _T]) -> Callable[..., tuple[_T, float]]:
    """``function`` returning ``(result, seconds)``: times a stage inside its own thread."""

    def timed(*args: Any) -> tuple[_T, float]:
        started = time.perf_counter()
        result = function(*args)
        return result, time.perf_counter() - started

    return timed


def _count_analysis(analysis: Analysis) -> None:
    metrics.SENTIMENT.labels(label=analysis.sentiment.label).inc()
    if analysis.sentiment.frustrated:
        metrics.FRUSTRATED_MESSAGES.inc()
    metrics.INTENTS.labels(intent=analysis.intent.label).inc()

"""The reply pipeline: one customer message in, one personalized, grounded reply out.

``prepare`` runs every stage before generation (analyze, recall, retrieve, decide,
recommend, compose) and raises client errors there, so a streaming request still
gets a proper 4xx status. ``run`` then yields events: ``meta`` (analysis, citations,
recommendations, escalation decision), ``token`` deltas, and ``final`` (the whole
response, the same object the JSON endpoint returns). The turn is committed before
``final`` is yielded: a client that saw ``final`` knows its turn is stored.

CPU-bound stages run in worker threads: the analysis in the embedder's executor (it
embeds), store reads and FAISS searches in the default thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, get_args

from core import metrics
from core.errors import ClientClosedRequestError, ConciergeError
from core.ids import new_id
from models.classifiers import Classifiers, ClassifiersUnavailableError
from models.classifiers.training_data import SENTIMENT_LABEL_NAMES
from models.embedder import Embedder
from models.engine.base import EngineClient, GenerationChunk, SamplingOptions
from retrieval.catalog import ProductCatalog
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from retrieval.knowledge import KnowledgeBase
from server.pipeline.analyze import Analysis, Analyzer
from server.pipeline.escalation import (
    EscalationDecision,
    EscalationReason,
    Streaks,
    decide_escalation,
    next_streaks,
)
from server.pipeline.memory import ConversationMemory, Memory
from server.pipeline.profile import CustomerProfile, ProfileBuilder
from server.pipeline.prompt import Prompt, PromptInputs, compose_prompt
from server.pipeline.recommend import Recommendation, recommend_sync, should_recommend
from server.pipeline.retrieve import Retrieved, retrieve_sync
from server.pipeline.tokens import TokenCounter
from server.pipeline.webhook import TicketNotifier
from server.security.privacy import redact_text
from server.store.conversations import (
    AnsweredBy,
    Conversation,
    ConversationMode,
    ConversationStore,
    NewTicket,
    Ticket,
    Turn,
    WebhookStatus,
)
from server.store.customers import CustomerStore
from server.tenants import Priority, TenantConfig, TenantConfigs

REPLY_OUTCOMES = ("answered", "handed_over", "human_queue", "aborted", "error")
"""Label values of ``concierge_replies_total`` (see ``core/metrics.py``)."""

log = logging.getLogger(__name__)

DisconnectCheck = Callable[[], Awaitable[bool]]
EventKind = Literal["meta", "token", "final"]
_DISCONNECT_POLL_S = 0.25


@dataclass(frozen=True)
class PipelineSettings:
    reply_max_tokens: int
    reply_temperature: float
    reply_frequency_penalty: float
    reply_presence_penalty: float
    memory_turns: int
    memory_summary_chars: int
    kb_passages: int
    grounding_min_similarity: float
    history_hits: int


@dataclass(frozen=True)
class ReplyRequest:
    tenant: str
    customer_id: str
    conversation_id: str | None
    message: str
    channel: str
    locale: str | None
    include_prompt: bool = False


@dataclass(frozen=True)
class ReplyEvent:
    kind: EventKind
    data: dict[str, Any] | str


@dataclass
class PreparedReply:
    """Everything decided before the first token."""

    request: ReplyRequest
    config: TenantConfig
    conversation: Conversation
    turn_id: str
    seq: int
    analysis: Analysis
    memory: Memory
    profile: CustomerProfile | None
    retrieved: Retrieved | None
    streaks: Streaks
    decision: EscalationDecision
    recommendations: list[Recommendation]
    prompt: Prompt | None
    started: float
    timings: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, since: float) -> float:
        now = time.perf_counter()
        seconds = now - since
        self.timings[name] = round(seconds * 1000, 2)
        metrics.PIPELINE_STAGE_DURATION.labels(stage=name).observe(seconds)
        return now


@dataclass
class Stores:
    customers: CustomerStore
    conversations: ConversationStore


class ReplyPipeline:
    """Runs the stages for one message; built once per process in the lifespan."""

    def __init__(
        self,
        *,
        settings: PipelineSettings,
        engine: EngineClient,
        embedder: Embedder,
        knowledge: KnowledgeBase,
        history: CustomerHistory,
        catalog: ProductCatalog,
        stores: Stores,
        tenants: TenantConfigs,
        notifier: TicketNotifier,
        token_counter: TokenCounter,
        classifiers: Callable[[], Classifiers],
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._embedder = embedder
        self._knowledge = knowledge
        self._history = history
        self._catalog = catalog
        self._stores = stores
        self._tenants = tenants
        self._notifier = notifier
        self._counter = token_counter
        self._classifiers = classifiers
        self._memory = ConversationMemory(
            stores.conversations, settings.memory_turns, settings.memory_summary_chars
        )
        self._profiles = ProfileBuilder(stores.customers, stores.conversations, catalog)
        self._background: set[asyncio.Task[Any]] = set()
        metrics.export_at_zero(metrics.ESCALATIONS, "reason", [r.value for r in EscalationReason])
        metrics.export_at_zero(metrics.TICKETS, "priority", list(get_args(Priority)))
        metrics.export_at_zero(metrics.REPLIES, "outcome", REPLY_OUTCOMES)
        metrics.export_at_zero(metrics.SENTIMENT, "label", SENTIMENT_LABEL_NAMES)

    # ------------------------------------------------------------------ before tokens

    async def prepare(self, request: ReplyRequest) -> PreparedReply:
        """Analyse, recall, retrieve and compose for ``request``.

        The message is redacted first: every later stage (the prompt, the stored turn,
        the history index, ticket transcripts) sees ``j***@example.com``, never the
        address, and the model can still tell the customer which one it means.
        """
        started = time.perf_counter()
        request = replace(request, message=redact_text(request.message, where="message"))
        config = self._tenants.get(request.tenant)
        analyzer = Analyzer(self._embedder, self._load_classifiers())
        analysis_task = asyncio.get_running_loop().run_in_executor(
            self._embedder.executor,
            _timed(analyzer.analyze_sync),
            request.tenant,
            request.message,
        )
        recall_task = asyncio.to_thread(_timed(self._recall_sync), request)
        (
            (analysis, analysis_seconds),
            ((conversation, memory, profile), recall_seconds),
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
            retrieved=None,
            streaks=Streaks(conversation.negative_streak, conversation.ungrounded_streak),
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
        prepared.retrieved = await asyncio.to_thread(
            retrieve_sync,
            self._knowledge,
            self._history,
            tenant=request.tenant,
            customer_id=request.customer_id,
            message=request.message,
            vector=analysis.vector,
            passages=self.settings.kb_passages,
            min_similarity=self.settings.grounding_min_similarity,
            history_hits=self.settings.history_hits,
            personalize=personalize,
        )
        mark = prepared.stage("retrieval", mark)
        prepared.streaks = next_streaks(
            prepared.streaks, analysis, grounded=prepared.retrieved.grounded
        )
        prepared.decision = decide_escalation(
            config.escalation, request.message, analysis, prepared.streaks
        )
        if should_recommend(config.recommendations, analysis, profile, prepared.decision) is None:
            prepared.recommendations = await asyncio.to_thread(
                recommend_sync,
                self._catalog,
                request.tenant,
                config.recommendations,
                analysis,
                profile,
            )
        mark = prepared.stage("recommend", mark)
        if prepared.decision.model_answers:
            prepared.prompt = compose_prompt(
                PromptInputs(
                    voice=config.voice,
                    message=request.message,
                    analysis=analysis,
                    passages=prepared.retrieved.passages,
                    profile=profile,
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

    def _recall_sync(
        self, request: ReplyRequest
    ) -> tuple[Conversation, Memory, CustomerProfile | None]:
        """The conversation (404 when it is not this customer's), its memory, the profile."""
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
        return conversation, memory, profile

    def _prompt_budget(self) -> int:
        context = self._engine.model_info.max_model_len or 2048
        return max(256, context - self.settings.reply_max_tokens)

    # ------------------------------------------------------------------ tokens and after

    async def run(
        self, prepared: PreparedReply, disconnected: DisconnectCheck
    ) -> AsyncIterator[ReplyEvent]:
        """Yield ``meta``, ``token``... and ``final`` (after the turn is committed)."""
        yield ReplyEvent("meta", _meta(prepared))
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        if prepared.prompt is not None:
            parts: list[str] = []
            async for chunk in self._generate(prepared, disconnected):
                usage = {
                    "prompt_tokens": chunk.prompt_tokens,
                    "completion_tokens": chunk.output_tokens,
                }
                if chunk.text:
                    parts.append(chunk.text)
                    yield ReplyEvent("token", chunk.text)
            reply = "".join(parts).strip()
            answered_by = AnsweredBy.MODEL
        else:
            reply = self._fixed_reply(prepared)
            answered_by = _answered_by(prepared)
            yield ReplyEvent("token", reply)
        mark = time.perf_counter()
        conversation, ticket = await asyncio.to_thread(
            self._persist_sync, prepared, reply, answered_by, usage
        )
        prepared.stage("persist", mark)
        total = time.perf_counter() - prepared.started
        prepared.timings["total"] = round(total * 1000, 2)
        metrics.PIPELINE_STAGE_DURATION.labels(stage="total").observe(total)
        self._after_commit(prepared, conversation, ticket, reply)
        yield ReplyEvent("final", _final(prepared, conversation, ticket, reply, usage))

    async def _generate(
        self, prepared: PreparedReply, disconnected: DisconnectCheck
    ) -> AsyncIterator[GenerationChunk]:
        """Stream the engine's chunks; abort the engine request if the client leaves."""
        assert prepared.prompt is not None
        request_id = f"reply-{uuid.uuid4().hex}"
        options = SamplingOptions(
            max_tokens=self.settings.reply_max_tokens,
            temperature=self.settings.reply_temperature,
            frequency_penalty=self.settings.reply_frequency_penalty,
            presence_penalty=self.settings.reply_presence_penalty,
        )
        mark = time.perf_counter()
        stream = self._engine.stream_chat(prepared.prompt.messages, options, request_id)
        first = True
        finished = False
        queue: asyncio.Queue[GenerationChunk | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for chunk in stream:
                    await queue.put(chunk)
                await queue.put(None)
            except BaseException as exc:  # handed to the consumer, which re-raises
                await queue.put(exc)

        task = asyncio.create_task(pump())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=_DISCONNECT_POLL_S)
                except TimeoutError:
                    if await disconnected():
                        raise ClientClosedRequestError("the client closed the connection") from None
                    continue
                if item is None:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if first and item.text:
                    first = False
                    prepared.stage("time_to_first_token", prepared.started)
                    metrics.GENERATION_TIME_TO_FIRST_TOKEN.labels(endpoint="support").observe(
                        time.perf_counter() - prepared.started
                    )
                if item.finish_reason is not None:
                    _count_generation(item)
                yield item
            prepared.stage("generation", mark)
        except (ClientClosedRequestError, asyncio.CancelledError, GeneratorExit):
            metrics.REPLIES.labels(outcome="aborted").inc()
            metrics.GENERATION_REQUESTS.labels("support", "abort").inc()
            raise
        except ConciergeError:  # engine failures, and overload or the deadline (503, 504)
            metrics.REPLIES.labels(outcome="error").inc()
            metrics.GENERATION_REQUESTS.labels("support", "error").inc()
            raise
        finally:
            if not task.done():
                task.cancel()
            if not finished:
                self._spawn(self._engine.abort(request_id))

    def _fixed_reply(self, prepared: PreparedReply) -> str:
        voice = prepared.config.voice
        if prepared.conversation.mode is ConversationMode.HUMAN:
            return voice.human_mode_ack
        return voice.handover_message

    def _persist_sync(
        self,
        prepared: PreparedReply,
        reply: str,
        answered_by: AnsweredBy,
        usage: dict[str, int],
    ) -> tuple[Conversation, Ticket | None]:
        analysis, decision = prepared.analysis, prepared.decision
        retrieved = prepared.retrieved
        citations = [c.as_dict() for c in prepared.prompt.citations] if prepared.prompt else []
        human_mode = prepared.conversation.mode is ConversationMode.HUMAN
        turn = Turn(
            turn_id=prepared.turn_id,
            conversation_id=prepared.conversation.conversation_id,
            seq=prepared.seq,
            created_at=time.time(),
            message=prepared.request.message,
            reply=reply,
            answered_by=answered_by,
            language=analysis.language.code,
            sentiment=analysis.sentiment.label,
            sentiment_score=analysis.sentiment.score,
            frustrated=analysis.sentiment.frustrated,
            intent=analysis.intent.label,
            intent_confidence=analysis.intent.confidence,
            grounded=bool(retrieved and retrieved.grounded) or human_mode,
            citations=citations,
            recommendations=[r.as_dict() for r in prepared.recommendations],
            escalation_reason=str(decision.reason) if decision.reason else None,
            prompt_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            timings=dict(prepared.timings),
        )
        summary, summarized = self._memory.next_summary(
            prepared.conversation, prepared.memory, prepared.seq
        )
        ticket = None
        transcript: list[dict[str, Any]] = []
        if decision.escalate:
            webhook = prepared.config.webhook
            ticket = NewTicket(
                reason=str(decision.reason),
                priority=decision.priority or prepared.config.escalation.priority_default,
                webhook_status=(
                    WebhookStatus.PENDING if webhook.url else WebhookStatus.NOT_CONFIGURED
                ),
            )
            transcript = _transcript(prepared, reply)
        return self._stores.conversations.record_turn(
            prepared.conversation,
            turn,
            negative_streak=prepared.streaks.negative,
            ungrounded_streak=prepared.streaks.ungrounded,
            summary=summary,
            summarized_turns=summarized,
            ticket=ticket,
            transcript=transcript,
        )

    def _after_commit(
        self,
        prepared: PreparedReply,
        conversation: Conversation,
        ticket: Ticket | None,
        reply: str,
    ) -> None:
        """Counters, the ticket webhook and the history entry: after the turn is safe."""
        if prepared.conversation.mode is ConversationMode.HUMAN:
            metrics.REPLIES.labels(outcome="human_queue").inc()
            return
        if prepared.prompt is None:
            metrics.REPLIES.labels(outcome="handed_over").inc()
        else:
            metrics.REPLIES.labels(outcome="answered").inc()
            if prepared.retrieved is not None and not prepared.retrieved.grounded:
                metrics.UNGROUNDED_REPLIES.inc()
        metrics.RECOMMENDATIONS.inc(len(prepared.recommendations))
        if ticket is not None:
            metrics.ESCALATIONS.labels(reason=ticket.reason).inc()
            metrics.TICKETS.labels(priority=ticket.priority).inc()
            self._notifier.notify(ticket, prepared.config.webhook)
        if prepared.seq == 1 and prepared.profile is not None:
            self._spawn(asyncio.to_thread(self._remember_conversation, prepared, reply))

    def _remember_conversation(self, prepared: PreparedReply, reply: str) -> None:
        """A history entry for the new conversation, so later ones can recall it.

        Filed under the first message's vector (already computed): a later message about
        the same thing finds it, and no second embedding competes with the engine for
        the CPU while the next reply is being generated.
        """
        request = prepared.request
        text = (
            f"Conversation about {prepared.analysis.intent.label.replace('_', ' ')}: "
            f'customer wrote "{request.message[:300]}"; we replied "{reply[:300]}"'
        )
        try:
            self._history.add(
                request.tenant,
                request.customer_id,
                [HistoryEntry(HistoryKind.CONVERSATION, text, time.time())],
                prepared.analysis.vector.reshape(1, -1),
            )
        except Exception:
            log.exception("could not add the conversation to the customer's history")

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        await self._notifier.close()


_T = TypeVar("_T")


def _timed(function: Callable[..., _T]) -> Callable[..., tuple[_T, float]]:
    """``function`` returning ``(result, seconds)``: times a stage inside its own thread."""

    def timed(*args: Any) -> tuple[_T, float]:
        started = time.perf_counter()
        result = function(*args)
        return result, time.perf_counter() - started

    return timed


def _count_generation(last: GenerationChunk) -> None:
    """The support endpoint's share of the generation metrics (chat has its own)."""
    metrics.GENERATION_REQUESTS.labels("support", last.finish_reason).inc()
    metrics.GENERATION_OUTPUT_TOKENS.labels("support").observe(last.output_tokens)
    metrics.GENERATION_PROMPT_TOKENS.labels("support").observe(last.prompt_tokens)


def _count_analysis(analysis: Analysis) -> None:
    metrics.SENTIMENT.labels(label=analysis.sentiment.label).inc()
    if analysis.sentiment.frustrated:
        metrics.FRUSTRATED_MESSAGES.inc()
    metrics.INTENTS.labels(intent=analysis.intent.label).inc()


def _answered_by(prepared: PreparedReply) -> AnsweredBy:
    if prepared.conversation.mode is ConversationMode.HUMAN:
        return AnsweredBy.HUMAN_QUEUE
    return AnsweredBy.MODEL if prepared.prompt is not None else AnsweredBy.HANDOVER


def _escalation(decision: EscalationDecision, ticket: Ticket | None) -> dict[str, Any]:
    return {
        "escalate": decision.escalate,
        "reason": str(decision.reason) if decision.reason else None,
        "priority": decision.priority,
        "ticket_id": ticket.ticket_id if ticket else None,
    }


def _meta(prepared: PreparedReply) -> dict[str, Any]:
    analysis = prepared.analysis.as_dict()
    data: dict[str, Any] = {
        "conversation_id": prepared.conversation.conversation_id,
        "turn_id": prepared.turn_id,
        "mode": str(prepared.conversation.mode),
        **analysis,
        "citations": [c.as_dict() for c in prepared.prompt.citations] if prepared.prompt else [],
        "recommendations": [r.as_dict() for r in prepared.recommendations],
        "escalation": _escalation(prepared.decision, None),
        "grounded": bool(prepared.retrieved and prepared.retrieved.grounded),
    }
    return data


def _final(
    prepared: PreparedReply,
    conversation: Conversation,
    ticket: Ticket | None,
    reply: str,
    usage: dict[str, int],
) -> dict[str, Any]:
    data = _meta(prepared)
    data.update(
        {
            "mode": str(conversation.mode),
            "reply": reply,
            "answered_by": str(_answered_by(prepared)),
            "escalation": _escalation(prepared.decision, ticket),
            "usage": {**usage, "total_tokens": sum(usage.values())},
            "timings_ms": dict(prepared.timings),
        }
    )
    data["prompt"] = None  # present in every answer, filled only when asked for
    if prepared.request.include_prompt:
        data["prompt"] = (
            [{"role": m.role, "content": m.content} for m in prepared.prompt.messages]
            if prepared.prompt
            else []
        )
    return data


def _transcript(prepared: PreparedReply, reply: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    if prepared.memory.summary:
        lines.append({"role": "summary", "text": prepared.memory.summary})
    for turn in prepared.memory.recent:
        lines.append({"role": "customer", "text": turn.message, "at": turn.created_at})
        lines.append({"role": "assistant", "text": turn.reply, "at": turn.created_at})
    now = time.time()
    lines.append({"role": "customer", "text": prepared.request.message, "at": now})
    lines.append({"role": "assistant", "text": reply, "at": now})
    return lines

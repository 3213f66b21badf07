"""What a reply is asked for, the settings it runs under, and what is decided before tokens.

``PreparedReply`` is the hand-over between the stages: ``ReplyPipeline.prepare`` fills it
(analysis, memory, profile, retrieval, escalation, recommendations, prompt), generation
and persistence read it. It lives apart from the pipeline so that every stage module can
take it without importing the pipeline itself.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Literal

from core import metrics
from server.pipeline.analyze import Analysis
from server.pipeline.composed import SentenceFocus
from server.pipeline.escalation import ConversationSignals, EscalationDecision
from server.pipeline.memory import Memory
from server.pipeline.profile import CustomerProfile
from server.pipeline.prompt import Prompt
from server.pipeline.recommend import Recommendation
from server.pipeline.retrieve import Retrieved
from server.store.conversations import Conversation, ConversationStore
from server.store.customers import CustomerStore
from server.tenants import TenantConfig

ReplyCheckMode = Literal["off", "mark", "fallback"]
"""What happens to a model reply that fails its check (``Settings.reply_check``)."""


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
    profile_fact_tokens: int = 200
    prompt_sentences: int = 6
    """Passage sentences the prompt quotes; 0: whole passages."""
    reply_check: ReplyCheckMode = "fallback"
    """off, mark or fallback (``Settings.reply_check``)."""
    reply_min_support: float = 0.5
    as_of: float | None = None
    """'Today' for every reply, as a timestamp (tests, replays); None: the clock."""


@dataclass(frozen=True)
class ReplyRequest:
    tenant: str
    customer_id: str
    conversation_id: str | None
    message: str
    channel: str
    locale: str | None
    include_prompt: bool = False
    as_of: float | None = None
    """'Today' for this reply (overrides the setting); None: the setting, else the clock."""
    seed: int | None = None
    """Sampling seed (benchmarks, replays): it fixes the sampler's draws; the reply repeats
    exactly only where the engine computes the same logits."""


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
    facts: list[str]
    """The lines of the customer's record the prompt shows (``record.select_facts``)."""
    now: dt.datetime
    """'Today' for this reply, in the tenant's time zone."""
    retrieved: Retrieved | None
    signals: ConversationSignals
    decision: EscalationDecision
    recommendations: list[Recommendation]
    prompt: Prompt | None
    started: float
    timings: dict[str, float] = field(default_factory=dict)
    ticket_id: str | None = None
    """The id the hand-over ticket will have, chosen before the reply that names it."""
    focus: SentenceFocus | None = None
    """The passages' sentences ranked against the message: what the prompt quotes, and
    what a composed answer quotes (``reply_check.sentence_focus``)."""

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

"""The trained heads as the reply pipeline uses them: sentiment, intent, per-tenant intent.

``Classifiers.load`` picks and verifies the default heads once (at start-up); every call
after that is numpy arithmetic on vectors the pipeline already computed.

Which default set serves: the heads shipped in the package (``default_heads/``), unless
a local set under ``<data_dir>/classifiers/default`` qualifies, i.e. it verifies, was
trained on the configured embedder (name and weights digest) and with a recipe at least
as recent as the shipped set's. A local set is something an operator trained on purpose
(own data, a newer copy, another embedder), so it wins over the generic shipped set; a
local set made by older training code, for another embedder, or damaged, is logged and
skipped, never half-trusted. The shipped set is refused, like a local one, when its
embedder differs from the configured one: the error names both and the retrain command.

Intent, with a tenant's own head (``intent(vectors, tenant, min_confidence=m)``): the
tenant's head answers when its top intent is at least ``m`` sure (``source="tenant"``);
else the general head (the default set's, Bitext's 27 intents) when its top intent is at
least ``m`` sure (``source="general"``); else ``UNKNOWN_INTENT`` with the best confidence
either head had (``source="none"``). A tenant teaches the intents its business has (a
``workshop_booking`` Bitext never saw) and keeps the general ones (``track_order``) for
what it did not teach; ``unknown`` says "neither head knows" instead of a confident-looking
guess. With ``m = 0`` (the default) a tenant head always answers, as before the fallback.

Tenant intent heads are found lazily: the first ``intent(..., tenant=t)`` looks for
``tenants/<t>/versions`` on disk, and later calls look again at most every
``refresh_interval_s`` (a directory listing), so a head trained by the CLI while the
server runs is picked up within seconds. ``reload_tenant`` looks at once (for code that
has just trained one). A tenant head that fails verification, or was trained with
another embedding model, is logged and ignored: the tenant gets the default head. A
removed head (``DELETE /admin/tenants/{t}/intents``) is noticed the same way.

Frustration rule (``SentimentResult.frustrated``): the label is ``negative`` and the
text carries at least one frustration cue (``text_cues.frustration_cues``: a phrase
like "third time", "still not", "unacceptable", a "!!"/"?!" run, or two shouted words).
A confident negative alone is not enough: the head is very sure about plain problem
reports ("problems cancelling my account"), which are unhappy but not frustrated, and
the flag escalates conversations. Swear words are not a cue on their own either: in
Bitext they pepper ordinary requests ("check the goddamn termination fees"), and
measured as a cue they escalated 37 of 850 such messages for nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.classifiers.embedder_identity import EmbedderIdentity
from models.classifiers.head_store import (
    SHIP_COMMAND,
    SHIPPED_HEADS_DIR,
    SHIPPED_HEADS_ROOT,
    TRAIN_COMMAND,
    ClassifiersUnavailableError,
    StoredHeads,
    TenantIntents,
    default_root,
    newest_version_folder,
    read_version,
    shipped_heads_dir,
    tenant_root,
)
from models.classifiers.linear_head import LinearHead
from models.classifiers.text_cues import cue_features, frustration_cues
from models.classifiers.training_data import SENTIMENT_LABEL_NAMES

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
TENANT_REFRESH_INTERVAL_S = 2.0
UNKNOWN_INTENT = "unknown"
"""The label when neither the tenant's head nor the general head is sure enough."""
IntentSource = Literal["tenant", "general", "none"]


@dataclass(frozen=True)
class SentimentResult:
    """How a message feels: label, a signed score, and whether the customer is fed up."""

    label: str  # "negative" | "neutral" | "positive"
    score: float  # P(positive) - P(negative), in [-1, 1]
    confidence: float  # probability of the chosen label
    frustrated: bool


@dataclass(frozen=True)
class IntentResult:
    """What the customer wants, in the intent names of the head that answered.

    ``source`` says which: ``"tenant"`` (the tenant's own head), ``"general"`` (the
    default head) or ``"none"`` (``UNKNOWN_INTENT``: neither was sure enough).
    """

    label: str
    confidence: float
    source: IntentSource = "general"


@dataclass
class _TenantEntry:
    folder: Path | None
    head: LinearHead | None
    checked_at: float
    described: TenantIntents | None = None


class Classifiers:
    """Sentiment and intent heads over the pipeline's sentence embeddings."""

    def __init__(
        self,
        directory: Path,
        default: StoredHeads,
        *,
        embedder: EmbedderIdentity | None = None,
        refresh_interval_s: float = TENANT_REFRESH_INTERVAL_S,
    ) -> None:
        self.directory = directory  # local sets: the tenants' heads, a local default set
        self.version_folder = default.folder
        self.shipped = default.version == 0
        self.embedding_model = str(default.manifest.get("embedding_model", ""))
        self.embedder = embedder
        self.manifest = default.manifest
        self._sentiment = default.heads["sentiment"]
        self._intent = default.heads["intent"]
        self._handover = default.heads.get("handover")
        handover_meta = default.manifest.get("heads", {}).get("handover", {})
        self.handover_min_probability = float(
            handover_meta.get("params", {}).get("min_probability", 1.0)
        )
        self._refresh_interval_s = refresh_interval_s
        self._tenants: dict[str, _TenantEntry] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        embedder: EmbedderIdentity | None = None,
        shipped: Path | Literal["for-embedder"] | None = "for-embedder",
    ) -> Classifiers:
        """The default heads that serve (see the module doc), tenant heads from ``directory``.

        ``embedder`` is the configured model's identity; a set trained on another one is
        refused. ``None`` skips that check (a caller that has just trained the set itself
        with its own embedder). ``shipped=None`` considers the local set only. Raises
        ``ClassifiersUnavailableError`` when no set qualifies.
        """
        problems: list[str] = []
        if shipped == "for-embedder":
            shipped = shipped_heads_dir(embedder.name) if embedder else SHIPPED_HEADS_DIR
            if not shipped.is_dir():
                problems.append(
                    f"no shipped heads for the configured embedder {shipped.name!r} (shipped "
                    f"for: {', '.join(sorted(p.name for p in SHIPPED_HEADS_ROOT.iterdir()))})"
                )
                shipped = None
        local = _candidate(newest_version_folder(default_root(directory)), embedder, problems)
        fallback = _candidate(shipped, embedder, problems)
        chosen = local
        if local is not None and fallback is not None:
            local_recipe = int(local.manifest.get("recipe", 0))
            shipped_recipe = int(fallback.manifest.get("recipe", 0))
            if local_recipe < shipped_recipe:
                problems.append(
                    f"local classifiers at {local.folder} come from training recipe "
                    f"{local_recipe}, the shipped ones from {shipped_recipe}"
                )
                chosen = fallback
        chosen = chosen or fallback
        if chosen is None:
            if not problems:
                problems.append(f"no trained classifiers in {directory}")
            raise ClassifiersUnavailableError(
                "; ".join(problems)
                + f". Retrain: `{TRAIN_COMMAND} --data DIR` (a local set) or `{SHIP_COMMAND}`"
                " (the shipped set)"
            )
        for problem in problems:
            log.warning("%s: skipped", problem)
        log.info(
            "classifiers: %s heads from %s (trained %s on %s)",
            "shipped" if chosen.version == 0 else "local",
            chosen.folder,
            chosen.manifest.get("trained_at", "at an unrecorded date"),
            chosen.manifest.get("embedding_model"),
        )
        return cls(directory, chosen, embedder=embedder)

    # ------------------------------------------------------------ sentiment

    def sentiment(self, texts: Sequence[str], vectors: Vectors) -> list[SentimentResult]:
        """One result per text; ``vectors`` are the texts' embeddings, in the same order."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        if not texts:
            return []
        probabilities = self._sentiment.probabilities(vectors, cue_features(texts))
        negative, positive = 0, 2  # SENTIMENT_LABEL_NAMES order, checked at load
        results = []
        for text, row in zip(texts, probabilities, strict=True):
            chosen = int(row.argmax())
            label = SENTIMENT_LABEL_NAMES[chosen]
            frustrated = label == "negative" and frustration_cues(text) >= 1
            results.append(
                SentimentResult(
                    label=label,
                    score=round(float(row[positive] - row[negative]), 4),
                    confidence=round(float(row[chosen]), 4),
                    frustrated=frustrated,
                )
            )
        return results

    # ------------------------------------------------------------ hand-over reasons

    def message_handover_reasons(self, vectors: Vectors) -> tuple[str, ...]:
        """The reasons the head is sure of in one message, from the vectors of its
        ``reading_units`` (the message, then its sentences): per reason, the most sure
        reading counts, so one decisive sentence in a long letter is not diluted."""
        if self._handover is None or len(vectors) == 0:
            return ()
        strongest = self._handover.probabilities(vectors).max(axis=0)
        return tuple(
            label
            for label, probability in zip(self._handover.labels, strongest, strict=True)
            if label != "none" and probability >= self.handover_min_probability
        )

    # ------------------------------------------------------------ intent

    def intent(
        self, vectors: Vectors, tenant: str | None = None, *, min_confidence: float = 0.0
    ) -> list[IntentResult]:
        """The most likely intent per vector: the tenant's head, the general head, or
        ``UNKNOWN_INTENT``, by the rule in the module doc."""
        own = self._tenant_head(tenant)
        if len(vectors) == 0:
            return []
        general = self._intent.probabilities(vectors)
        general_best = general.argmax(axis=1)
        if own is None:
            own_best = np.full(len(vectors), -1)
            own_confidence = np.zeros(len(vectors), dtype=np.float32)
        else:
            own_probabilities = own.probabilities(vectors)
            own_best = own_probabilities.argmax(axis=1)
            own_confidence = own_probabilities.max(axis=1)
        results = []
        for row, (mine, mine_sure, theirs) in enumerate(
            zip(own_best, own_confidence, general_best, strict=True)
        ):
            theirs_sure = float(general[row, theirs])
            if own is not None and float(mine_sure) >= min_confidence:
                results.append(
                    IntentResult(own.labels[int(mine)], round(float(mine_sure), 4), "tenant")
                )
            elif theirs_sure >= min_confidence:
                results.append(
                    IntentResult(self._intent.labels[int(theirs)], round(theirs_sure, 4), "general")
                )
            else:
                best = max(float(mine_sure), theirs_sure)
                results.append(IntentResult(UNKNOWN_INTENT, round(best, 4), "none"))
        return results

    def intent_labels(self, tenant: str | None = None, *, min_confidence: float = 0.0) -> list[str]:
        """The intents ``intent(..., tenant, min_confidence=...)`` can answer: the tenant's
        own (when it has a head), then the general head's it does not repeat, then
        ``UNKNOWN_INTENT``. The general ones and ``unknown`` are left out where they cannot
        come: a tenant head with ``min_confidence`` 0 answers every message itself."""
        own = self._tenant_head(tenant)
        labels = list(own.labels) if own is not None else []
        if own is None or min_confidence > 0:
            labels += [label for label in self._intent.labels if label not in labels]
        if min_confidence > 0 and UNKNOWN_INTENT not in labels:
            labels.append(UNKNOWN_INTENT)
        return labels

    def tenant_intents(self, tenant: str) -> TenantIntents | None:
        """The tenant's own intent head in force, as its manifest describes it; None when
        the general head serves the tenant (no head, or one refused at load)."""
        self._tenant_head(tenant)
        with self._lock:
            entry = self._tenants.get(tenant)
        return entry.described if entry is not None and entry.head is not None else None

    def reload_tenant(self, tenant: str) -> None:
        """Look for a newer head of ``tenant`` now, instead of at the next refresh."""
        with self._lock:
            self._refresh_tenant(tenant)

    def _tenant_head(self, tenant: str | None) -> LinearHead | None:
        """The tenant's own head, looked for again every ``refresh_interval_s``."""
        if tenant is None:
            return None
        with self._lock:
            entry = self._tenants.get(tenant)
            if entry is None or time.monotonic() - entry.checked_at >= self._refresh_interval_s:
                entry = self._refresh_tenant(tenant)
        return entry.head

    def _refresh_tenant(self, tenant: str) -> _TenantEntry:
        """Load the tenant's newest version if it changed; caller holds the lock."""
        from core.ids import check_tenant

        previous = self._tenants.get(tenant)
        folder = newest_version_folder(tenant_root(self.directory, check_tenant(tenant)))
        if folder is None:
            entry = _TenantEntry(None, None, time.monotonic())
        elif previous is None or previous.folder != folder:
            stored = self._read_tenant_head(tenant, folder)
            entry = _TenantEntry(
                folder,
                stored.heads["intent"] if stored else None,
                time.monotonic(),
                TenantIntents.from_manifest(folder, stored.manifest) if stored else None,
            )
        else:
            entry = _TenantEntry(folder, previous.head, time.monotonic(), previous.described)
        self._tenants[tenant] = entry
        return entry

    def _read_tenant_head(self, tenant: str, folder: Path) -> StoredHeads | None:
        """The version at ``folder`` if it verifies and fits the serving embedder."""
        try:
            stored = read_version(folder)
        except ClassifiersUnavailableError as exc:
            log.warning("tenant %s intent head ignored: %s", tenant, exc.message)
            return None
        head = stored.heads.get("intent")
        if head is None:
            log.warning("tenant %s intent head ignored: %s holds no intent head", tenant, folder)
            return None
        if self.embedder is not None:
            problem = self.embedder.mismatch(stored.manifest)
        elif stored.manifest.get("embedding_model") != self.embedding_model:
            problem = (
                f"trained on {stored.manifest.get('embedding_model')!r}, "
                f"serving {self.embedding_model!r}"
            )
        else:
            problem = None
        if problem is None and head.dimension != self._intent.dimension:
            problem = f"{head.dimension} dimensions, serving {self._intent.dimension}"
        if problem is not None:
            log.warning(
                "tenant %s intent head at %s ignored: %s; retrain it with `%s --tenant %s "
                "--intents FILE`",
                tenant,
                folder,
                problem,
                TRAIN_COMMAND,
                tenant,
            )
            return None
        log.info(
            "tenant %s intent head loaded from %s (%d intents)", tenant, folder, len(head.labels)
        )
        return stored


def _candidate(
    folder: Path | None, embedder: EmbedderIdentity | None, problems: list[str]
) -> StoredHeads | None:
    """The default set at ``folder`` if it verifies and fits ``embedder``; else None, and
    the reason appended to ``problems``."""
    if folder is None:
        return None
    if not folder.is_dir():
        problems.append(f"no classifiers at {folder}")
        return None
    try:
        stored = read_version(folder)
    except ClassifiersUnavailableError as exc:
        problems.append(exc.message)
        return None
    missing = {"sentiment", "intent"} - set(stored.heads)
    if missing:
        problems.append(f"classifiers at {folder} lack {', '.join(sorted(missing))}")
        return None
    if stored.heads["sentiment"].labels != SENTIMENT_LABEL_NAMES:
        problems.append(f"classifiers at {folder}: unexpected sentiment labels")
        return None
    if embedder is not None:
        for name in ("sentiment", "intent"):
            meta = stored.manifest["heads"][name]
            problem = embedder.mismatch(meta if "embedder" in meta else stored.manifest)
            if problem is not None:
                problems.append(f"{name} head at {folder}: {problem}")
                return None
    return stored

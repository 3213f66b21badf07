"""Training the heads: embeddings in, cross-validated logistic regressions out.

Both heads are multinomial logistic regressions over the pipeline's own sentence
embeddings (``Embedder.embed_sync(..., purpose="classifier")``), so serving needs no
second model. scikit-learn is imported here only, inside the functions.

How each head is fitted: ``fitting.py``.

A run whose source files (by SHA-256), embedding model (name and weights digest) and
``RECIPE`` match the newest manifest publishes nothing and reports "up to date".

``train_classifiers`` publishes a local version under ``<data_dir>/classifiers``;
``train_shipped_heads`` writes the same heads into the package's ``default_heads/`` (what
``make classifier-heads`` runs). Either manifest records, per head, the embedder it was
trained on, the data's fingerprint and file names, the date, and its held-out scores.

``publish_tenant_intents`` fits and publishes one tenant's own intent head, for the CLI
(``train_tenant_intents``, from a file) and the admin API (an upload) alike, so a head is
recorded the same way whoever trained it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.classifiers.embedder_identity import EmbedderIdentity, embedder_identity
from models.classifiers.fitting import (
    INTENT_FOLDS,
    FloatArray,
    HeadReport,
    accuracy,
    fit_intent_head,
    macro_f1,
    predict,
)
from models.classifiers.handover_head import (
    fit_handover_head,
    handover_set_hashes,
    handover_set_paths,
    load_handover_examples,
)
from models.classifiers.head_store import (
    MANIFEST,
    ClassifiersUnavailableError,
    HeadSet,
    TenantIntents,
    default_root,
    newest_version_folder,
    read_manifest,
    shipped_heads_dir,
    tenant_root,
    write_flat,
    write_version,
)
from models.classifiers.support_sentiment import (
    SUPPORT_SET,
    fit_support_sentiment_head,
    load_support_set,
    support_set_hashes,
)
from models.classifiers.training_data import (
    INTENT_SOURCES,
    REPO_DATASETS,
    SENTIMENT_SOURCES,
    LabelledTexts,
    bitext_split,
    load_bitext,
    load_sentiment,
    load_tenant_examples,
    source_hashes,
)
from models.embedder import Embedder
from models.prepare import sha256_file

RECIPE = 11  # bump when training changes in a way that should retrain unchanged data
# 5: manifests record the embedder's weights digest, data fingerprints and held-out scores
# 6: the sentiment head is trained for support messages (support_sentiment.py)
# 7: a hand-over reason head (handover_head.py)
# 10: more frustration phrases in the sentiment head's cue features (text_cues.py)
# 11: the hand-over head reads sentences, learns did_not_help, and its threshold is chosen
#     leaving one escalation set out (handover_head.py)
EMBED_PURPOSE = "classifier"

Progress = Callable[[str], None]


DATASETS = {
    "intent": "Bitext customer support (CDLA-Sharing-1.0): 80% of the rows, the fixed "
    "stratified bitext_split; the other 20% are held out",
    "sentiment": "the hand-labelled support messages' train split (datasets/support-sentiment, "
    "English, French, Chinese), 800 Bitext non-complaint requests as neutral, TweetEval "
    "sentiment val (2,000 tweets) (support_sentiment.py)",
    "handover": "the turns of datasets/escalation conversations.jsonl, heldout.jsonl, "
    "heldout-2.jsonl to heldout-12.jsonl and training-extra.jsonl to training-extra-3.jsonl, "
    "Bitext's contact_human_agent requests and 600 others of its training split "
    "(handover_head.py); each held-out set was measured blind before it was added",
}
HELDOUT = {
    "intent": "Bitext held-out 20% (never trained on)",
    "sentiment": "the support messages' train split, 5-fold out-of-fold; the decision bias is "
    "chosen on the same folds, so slightly optimistic (bench/reading.py scores the test split)",
    "handover": "the set conversations, one set left out at a time, each turn read whole and "
    "by sentence; the threshold is chosen on the same split (bench/reading.py scores the "
    "held-out sets)",
}


@dataclass(frozen=True)
class TrainingReport:
    """The outcome of a training run, printed by the CLI."""

    directory: Path
    up_to_date: bool
    seconds: float
    heads: dict[str, HeadReport]

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        state = "up to date (sources unchanged)" if self.up_to_date else "trained"
        lines = [f"classifiers {state} at {self.directory} in {self.seconds:.1f} s"]
        for head in self.heads.values():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in head.metrics.items())
            lines.append(f"  {head.name}: {head.examples} examples, {head.labels} labels; {shown}")
        return lines


def train_classifiers(
    embedder: Embedder,
    source: Path,
    out_dir: Path,
    *,
    datasets: Path = REPO_DATASETS,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train the default heads from ``source`` (the public data) and ``datasets`` (the
    project's hand-labelled sets, default the repository's ``datasets/``) and publish them
    as a new local version under ``out_dir`` (``classifiers_dir(data_dir)``)."""
    root = default_root(out_dir)
    return _train_default(
        embedder,
        source,
        root,
        current=lambda: _current_manifest(root),
        publish=lambda heads: write_version(
            root,
            HeadSet(
                heads.heads, heads.head_info, {**heads.extra, "source_dir": str(source.resolve())}
            ),
        ),
        datasets=datasets,
        force=force,
        progress=progress,
    )


def train_shipped_heads(
    embedder: Embedder,
    source: Path,
    folder: Path | None = None,
    *,
    datasets: Path = REPO_DATASETS,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train the default heads from ``source`` into ``folder`` in the shipped layout.

    This is how the package data in ``default_heads/`` is made (``make classifier-heads``);
    the manifest names the data by fingerprint, never by this machine's path. ``folder``
    defaults to the shipped set of the embedder's model.
    """
    folder = folder or shipped_heads_dir(embedder.config.model)

    def current() -> dict[str, Any] | None:
        if not (folder / MANIFEST).is_file():
            return None
        try:
            return read_manifest(folder)
        except ClassifiersUnavailableError:
            return None  # a damaged set is replaced, never trusted

    return _train_default(
        embedder,
        source,
        folder,
        current=current,
        publish=lambda heads: write_flat(folder, heads),
        datasets=datasets,
        force=force,
        progress=progress,
    )


def _train_default(
    embedder: Embedder,
    source: Path,
    where: Path,
    *,
    current: Callable[[], dict[str, Any] | None],
    publish: Callable[[HeadSet], Path],
    datasets: Path,
    force: bool,
    progress: Progress | None,
) -> TrainingReport:
    say = progress or (lambda _: None)
    started = time.perf_counter()
    support_hashes, handover_hashes = support_set_hashes(datasets), handover_set_hashes(datasets)
    sources = {**source_hashes(source), **support_hashes, **handover_hashes}
    identity = embedder_identity(embedder.config.model, data_dir=embedder.config.data_dir)
    if not force:
        manifest = current()
        if manifest is not None and _matches(manifest, sources, identity):
            return _report_from_manifest(manifest, where, time.perf_counter() - started)

    bitext = load_bitext(source)
    train_rows, heldout_rows = bitext_split(bitext)
    intents, heldout = bitext.subset(train_rows), bitext.subset(heldout_rows)
    say(f"intent: embedding {len(intents)} Bitext training examples (+{len(heldout)} held out)")
    intent_vectors = embedder.embed_sync(intents.texts, purpose=EMBED_PURPOSE)
    heldout_vectors = embedder.embed_sync(heldout.texts, purpose=EMBED_PURPOSE)
    say(f"intent: fitting {len(set(intents.labels))} intents, {INTENT_FOLDS}-fold cross-validation")
    intent_head, intent_report = fit_intent_head(intent_vectors, intents.labels, name="intent")
    predicted = predict(intent_head, heldout_vectors)
    intent_report.metrics["heldout_accuracy"] = accuracy(heldout.labels, predicted)
    intent_report.metrics["heldout_macro_f1"] = macro_f1(heldout.labels, predicted)

    support = load_support_set(datasets / SUPPORT_SET)
    sentiment_head, sentiment_report = fit_support_sentiment_head(
        lambda texts: embedder.embed_sync(texts, purpose=EMBED_PURPOSE),
        support,
        load_sentiment(source),
        intents,
        progress=say,
    )

    say("handover: fitting the reason head on the escalation sets' turns, one set left out")
    handover_head, handover_report = fit_handover_head(
        lambda texts: embedder.embed_sync(texts, purpose=EMBED_PURPOSE),
        load_handover_examples(handover_set_paths(datasets)),
        intents,
        intent_vectors,
    )

    heads = {"sentiment": sentiment_head, "intent": intent_head, "handover": handover_head}
    reports = {
        "sentiment": sentiment_report,
        "intent": intent_report,
        "handover": handover_report,
    }
    trained_at = _now()
    files = {
        "sentiment": (*map(str, SENTIMENT_SOURCES), *support_hashes),
        "intent": tuple(map(str, INTENT_SOURCES)),
        "handover": (*map(str, INTENT_SOURCES), *handover_hashes),
    }
    info = {
        name: {
            **_head_info(report),
            "embedder": identity.as_manifest(),
            "trained_at": trained_at,
            "data": {
                "datasets": DATASETS[name],
                "fingerprint": data_fingerprint({str(f): sources[str(f)] for f in files[name]}),
                "files": [str(f) for f in files[name]],
            },
            "heldout": {
                "split": HELDOUT[name],
                **{k: round(float(v), 4) for k, v in _heldout_scores(name, report).items()},
            },
        }
        for name, report in reports.items()
    }
    folder = publish(
        HeadSet(
            heads,
            info,
            {
                "kind": "default",
                "recipe": RECIPE,
                "embedding_model": embedder.model_name,
                "embedder": identity.as_manifest(),
                "dimension": int(intent_vectors.shape[1]),
                "sources": sources,
                "data_fingerprint": data_fingerprint(sources),
                "trained_at": trained_at,
                "training_seconds": round(time.perf_counter() - started, 2),
            },
        )
    )
    say(f"published {folder}")
    return TrainingReport(where, False, time.perf_counter() - started, reports)


def _now() -> str:
    """The training date as the manifests record it: ISO 8601, UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def data_fingerprint(sources: dict[str, Any]) -> str:
    """One SHA-256 for a set of source files, from their names and SHA-256 digests."""
    listed = {name: meta["sha256"] for name, meta in sorted(sources.items())}
    return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()


def _heldout_scores(name: str, report: HeadReport) -> dict[str, float]:
    """The scores on examples a head was not fitted on (see ``HELDOUT``)."""
    if name == "intent":
        return {
            "accuracy": report.metrics["heldout_accuracy"],
            "macro_f1": report.metrics["heldout_macro_f1"],
        }
    if name == "handover":
        return {
            "control_fire_rate": report.metrics["cv_control_fire_rate"],
            "recall": report.metrics["cv_recall"],
            "right_reason": report.metrics["cv_right_reason"],
        }
    return {
        "macro_recall": report.metrics["cv_macro_recall"],
        "negative_recall": report.metrics["cv_negative_recall"],
        "neutral_as_negative": report.metrics["cv_neutral_as_negative"],
    }


def train_tenant_intents(
    embedder: Embedder, examples_file: Path, out_dir: Path, tenant: str
) -> TrainingReport:
    """Train and publish ``tenant``'s own intent head from a CSV or JSONL examples file
    (the CLI; the admin API uploads the same format and publishes the same way)."""
    from core.ids import check_tenant

    started = time.perf_counter()
    check_tenant(tenant)
    examples = load_tenant_examples(examples_file)  # a bad file fails before any model work
    identity = embedder_identity(embedder.config.model, data_dir=embedder.config.data_dir)
    vectors = embedder.embed_sync(examples.texts, purpose=EMBED_PURPOSE)
    sources = {
        examples_file.name: {
            "sha256": sha256_file(examples_file),
            "bytes": examples_file.stat().st_size,
        }
    }
    published, report = publish_tenant_intents(
        out_dir,
        tenant,
        examples,
        vectors,
        identity=identity,
        embedding_model=embedder.model_name,
        sources=sources,
        started=started,
    )
    return TrainingReport(
        published.folder.parent.parent, False, time.perf_counter() - started, {"intent": report}
    )


def publish_tenant_intents(
    out_dir: Path,
    tenant: str,
    examples: LabelledTexts,
    vectors: FloatArray,
    *,
    identity: EmbedderIdentity,
    embedding_model: str,
    sources: dict[str, dict[str, Any]],
    started: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[TenantIntents, HeadReport]:
    """Fit ``tenant``'s intent head on ``vectors`` (the examples' embeddings, by the
    serving embedder ``identity``) and publish it atomically as the tenant's next version.

    One function for the CLI and the admin API, so a head is described the same way
    whoever trained it; ``sources`` names the data (file name or upload, SHA-256, bytes),
    ``started`` (a ``perf_counter`` reading) lets the recorded time include embedding.
    ``cancelled`` is asked once the head is fitted: if it says yes, nothing is published
    (``JobCancelledError``), so a removal that cancelled a running training stays removed.
    """
    from core.errors import JobCancelledError
    from core.ids import check_tenant

    started = time.perf_counter() if started is None else started
    root = tenant_root(out_dir, check_tenant(tenant))
    head, report = fit_intent_head(vectors, examples.labels, name=f"intent[{tenant}]")
    if cancelled():
        raise JobCancelledError("cancelled before the head was published; nothing changed")
    extra = {
        "kind": "tenant",
        "tenant": tenant,
        "recipe": RECIPE,
        "embedding_model": embedding_model,
        "embedder": identity.as_manifest(),
        "dimension": int(vectors.shape[1]),
        "sources": sources,
        "data_fingerprint": data_fingerprint(sources),
        "trained_at": _now(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    folder = write_version(root, HeadSet({"intent": head}, {"intent": _head_info(report)}, extra))
    return TenantIntents.from_manifest(folder, read_manifest(folder)), report


# ---------------------------------------------------------------- fitting


def _head_info(report: HeadReport) -> dict[str, Any]:
    return {
        "examples": report.examples,
        "metrics": {k: round(float(v), 4) for k, v in report.metrics.items()},
        "params": report.params,
    }


def _current_manifest(root: Path) -> dict[str, Any] | None:
    folder = newest_version_folder(root)
    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except ClassifiersUnavailableError:
        return None  # a damaged version is replaced, never trusted


def _matches(manifest: dict[str, Any], sources: dict[str, Any], identity: EmbedderIdentity) -> bool:
    return bool(
        manifest.get("sources") == sources
        and identity.mismatch(manifest) is None
        and manifest.get("recipe") == RECIPE
        and {"sentiment", "intent"} <= set(manifest.get("heads", {}))
    )


def _report_from_manifest(manifest: dict[str, Any], root: Path, seconds: float) -> TrainingReport:
    heads = {
        name: HeadReport(
            name,
            int(meta.get("examples", 0)),
            len(meta.get("labels", [])),
            dict(meta.get("metrics", {})),
            dict(meta.get("params", {})),
        )
        for name, meta in manifest["heads"].items()
    }
    return TrainingReport(root, True, seconds, heads)

"""``IntentService`` with a stand-in embedder: validation before any job, a training job
that publishes and serves at once, GET and DELETE, and cancellation by DELETE.

The embedder maps a text to an axis by a keyword, so the head it trains is known in
advance; the classifiers are the hand-built set of the classifier tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from models.classifiers import Classifiers
from retrieval.job import JobState
from retrieval.jobs import ReindexJobs
from server.services.intents import JOB_KIND, MAX_INTENT_EXAMPLES, IntentService
from tests.classifier_sets import MODEL, general_classifiers

KEYWORDS = ("grinder", "workshop", "wrap")
LABELS = ("product_advice", "workshop_booking", "gift_wrapping")


class KeywordEmbedder:
    """Texts to 4-d unit vectors: the axis of the first keyword they hold, else axis 3."""

    model_name = MODEL
    config = SimpleNamespace(model=MODEL, data_dir=Path("unused"))

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s

    async def embed(self, texts: Sequence[str], *, purpose: str = "query") -> np.ndarray:
        self.calls.append(len(texts))
        await asyncio.sleep(self.delay_s)
        rows = []
        for n, text in enumerate(texts):
            axis = next((i for i, k in enumerate(KEYWORDS) if k in text), 3)
            vector = np.full(4, 0.05 * ((n % 3) - 1), dtype=np.float32)
            vector[axis] = 1.0
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows).astype(np.float32)


def examples_jsonl(per_label: int = 8) -> bytes:
    rows = [
        {"text": f"{keyword} question number {n}", "label": label}
        for keyword, label in zip(KEYWORDS, LABELS, strict=True)
        for n in range(per_label)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture
def classifiers(tmp_path: Path) -> Classifiers:
    return general_classifiers(tmp_path)


def service(classifiers: Classifiers, embedder: KeywordEmbedder) -> IntentService:
    jobs = ReindexJobs(None)  # type: ignore[arg-type]  # no KB: only submit_work runs
    return IntentService(embedder, lambda: classifiers, jobs)  # type: ignore[arg-type]


async def test_upload_trains_publishes_and_serves_at_once(classifiers: Classifiers) -> None:
    embedder = KeywordEmbedder()
    intents = service(classifiers, embedder)
    job = await intents.train("shop", examples_jsonl(), "application/x-ndjson", wait=True)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.kind == JOB_KIND and job.mode is None and (job.done, job.total) == (24, 24)
    result = job.result or {}
    assert result["tenant"] == "shop" and result["version"] == 1 and result["examples"] == 24
    assert sorted(result["intents"]) == sorted(LABELS)
    assert set(result["metrics"]) == {"cv_accuracy", "cv_macro_f1"}
    assert job.as_dict()["mode"] is None and job.as_dict()["kind"] == "tenant_intents"
    vector = (await embedder.embed(["does this grinder fit"]))[:1]
    [answer] = classifiers.intent(vector, "shop")  # no reload wait: the job told them
    assert (answer.label, answer.source) == ("product_advice", "tenant")
    assert (await intents.get("shop")).as_dict() == result

    await intents.delete("shop")
    assert classifiers.intent(vector, "shop")[0].source == "general"
    with pytest.raises(NotFoundError, match="general head serves"):
        await intents.get("shop")
    with pytest.raises(NotFoundError, match="no intent head of its own to remove"):
        await intents.delete("shop")


async def test_examples_are_embedded_in_batches(classifiers: Classifiers) -> None:
    embedder = KeywordEmbedder()
    intents = service(classifiers, embedder)
    job = await intents.train("shop", examples_jsonl(100), "application/jsonl", wait=True)
    assert job.state is JobState.SUCCEEDED, job.error
    assert embedder.calls == [256, 44]  # replies waiting for the embedder wait one batch


async def test_bad_uploads_fail_before_any_job(classifiers: Classifiers) -> None:
    embedder = KeywordEmbedder()
    intents = service(classifiers, embedder)
    with pytest.raises(InvalidRequestError, match="Content-Type") as wrong:
        await intents.train("shop", examples_jsonl(), "application/json", wait=True)
    assert wrong.value.param == "content-type"
    with pytest.raises(InvalidRequestError, match="body line 1: not JSON"):
        await intents.train("shop", b"text,label\n", "application/x-ndjson", wait=True)
    with pytest.raises(PayloadTooLargeError, match="examples"):
        rows = b'{"text": "grinder", "label": "a"}\n' * (MAX_INTENT_EXAMPLES + 1)
        await intents.train("shop", rows, "application/x-ndjson", wait=True)
    with pytest.raises(InvalidRequestError, match="tenant"):
        await intents.train("../x", examples_jsonl(), "text/csv", wait=True)
    assert embedder.calls == []


async def test_csv_uploads_train_too(classifiers: Classifiers) -> None:
    lines = ["text,label"] + [
        f"{keyword} question {n},{label}"
        for keyword, label in zip(KEYWORDS, LABELS, strict=True)
        for n in range(6)
    ]
    intents = service(classifiers, KeywordEmbedder())
    job = await intents.train("shop", "\n".join(lines).encode(), "text/csv", wait=True)
    assert job.state is JobState.SUCCEEDED, job.error


async def test_delete_cancels_a_running_training(classifiers: Classifiers) -> None:
    intents = service(classifiers, KeywordEmbedder(delay_s=0.05))
    job = await intents.train("shop", examples_jsonl(300), "application/x-ndjson", wait=False)
    assert job.state is JobState.QUEUED and job.total == 900
    await asyncio.sleep(0.02)
    assert await intents.delete("shop") == 1
    await asyncio.wait_for(job.finished.wait(), 10)
    assert job.state is JobState.CANCELLED and "nothing was published" in (job.error or "")
    with pytest.raises(NotFoundError):
        await intents.get("shop")

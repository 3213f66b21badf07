"""A tenant's own intents without any model: the examples validator, the tenant ->
general -> ``unknown`` rule, and publishing a head fitted on made-up vectors.

Heads here are ``LinearHead`` arrays written by hand over 4-dimensional "embeddings"
(``tests.classifier_sets.general_classifiers``), so every probability is known in advance
and no embedder loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import JobCancelledError
from models.classifiers import (
    UNKNOWN_INTENT,
    Classifiers,
    ExamplesTooLargeError,
    IntentResult,
    TrainingDataError,
    parse_tenant_examples,
    publish_tenant_intents,
)
from models.classifiers.embedder_identity import EmbedderIdentity
from models.classifiers.head_store import (
    HeadSet,
    newest_version_folder,
    read_manifest,
    remove_versions,
    tenant_root,
    write_version,
)
from models.classifiers.training_data import (
    MAX_LABEL_CHARS,
    LabelledTexts,
    load_tenant_examples,
)
from tests.classifier_sets import GENERAL, MODEL, general_classifiers, head

OWN = ("product_advice", "workshop_booking")
SURE_OF_OWN = np.array([1, 0, 0, 0], dtype=np.float32)  # tenant head ~1.0 product_advice
SURE_OF_GENERAL = np.array([0, 0, 1, 0], dtype=np.float32)  # tenant 0.5/0.5, general ~1.0
SURE_OF_NEITHER = np.zeros(4, dtype=np.float32)  # tenant 0.5, general 1/3 each


def publish_own_head(directory: Path, tenant: str = "shop") -> Path:
    info = {"examples": 24, "metrics": {"cv_accuracy": 0.95, "cv_macro_f1": 0.94}, "params": {}}
    extra = {"embedding_model": MODEL, "tenant": tenant, "trained_at": "2025-01-02T03:04:05+00:00"}
    own = head(OWN, [[8, 0, 0, 0], [0, 8, 0, 0]])
    return write_version(
        tenant_root(directory, tenant), HeadSet({"intent": own}, {"intent": info}, extra)
    )


@pytest.fixture
def classifiers(tmp_path: Path) -> Classifiers:
    publish_own_head(tmp_path)
    return general_classifiers(tmp_path)


# ---------------------------------------------------------------- tenant -> general -> unknown


def test_a_sure_tenant_head_answers(classifiers: Classifiers) -> None:
    [result] = classifiers.intent(SURE_OF_OWN[None], "shop", min_confidence=0.6)
    assert (result.label, result.source) == ("product_advice", "tenant")
    assert result.confidence > 0.99


def test_an_unsure_tenant_head_falls_back_to_a_sure_general_head(classifiers: Classifiers) -> None:
    [result] = classifiers.intent(SURE_OF_GENERAL[None], "shop", min_confidence=0.6)
    assert (result.label, result.source) == ("track_order", "general")
    assert result.confidence > 0.99


def test_neither_sure_is_unknown_with_the_best_confidence_seen(classifiers: Classifiers) -> None:
    [result] = classifiers.intent(SURE_OF_NEITHER[None], "shop", min_confidence=0.6)
    assert result == IntentResult(UNKNOWN_INTENT, 0.5, "none")  # the tenant head's 0.5
    assert UNKNOWN_INTENT == "unknown"


def test_without_a_threshold_the_tenant_head_always_answers(classifiers: Classifiers) -> None:
    # positional call, as before the fallback: min_confidence defaults to 0
    [result] = classifiers.intent(SURE_OF_GENERAL[None], "shop")
    assert result.source == "tenant" and result.label in OWN
    assert result.confidence == 0.5


def test_a_tenant_without_a_head_gets_the_general_head_or_unknown(
    classifiers: Classifiers,
) -> None:
    vectors = np.stack([SURE_OF_GENERAL, SURE_OF_OWN])
    sure, unsure = classifiers.intent(vectors, "other", min_confidence=0.6)
    assert (sure.label, sure.source) == ("track_order", "general")
    assert (unsure.label, unsure.source) == (UNKNOWN_INTENT, "none")
    assert unsure.confidence == pytest.approx(1 / 3, abs=1e-3)
    assert classifiers.intent(vectors)[0].source == "general"  # no tenant at all
    assert classifiers.intent(np.zeros((0, 4), dtype=np.float32), "shop") == []


def test_one_batch_mixes_the_three_sources_in_order(classifiers: Classifiers) -> None:
    vectors = np.stack([SURE_OF_NEITHER, SURE_OF_OWN, SURE_OF_GENERAL])
    results = classifiers.intent(vectors, "shop", min_confidence=0.6)
    assert [r.source for r in results] == ["none", "tenant", "general"]
    assert [r.label for r in results] == [UNKNOWN_INTENT, "product_advice", "track_order"]


def test_the_default_source_keeps_old_constructors_working() -> None:
    assert IntentResult("track_order", 0.9).source == "general"


def test_intent_labels_are_what_intent_can_answer(classifiers: Classifiers) -> None:
    assert classifiers.intent_labels("shop") == list(OWN)
    assert classifiers.intent_labels("shop", min_confidence=0.6) == [
        *OWN,
        *GENERAL,
        UNKNOWN_INTENT,
    ]
    assert classifiers.intent_labels("other") == list(GENERAL)
    assert classifiers.intent_labels() == list(GENERAL)
    assert classifiers.intent_labels("other", min_confidence=0.5) == [*GENERAL, UNKNOWN_INTENT]


def test_tenant_intents_describes_the_head_in_force(
    classifiers: Classifiers, tmp_path: Path
) -> None:
    described = classifiers.tenant_intents("shop")
    assert described is not None
    assert described.as_dict() == {
        "tenant": "shop",
        "version": 1,
        "intents": list(OWN),
        "examples": 24,
        "metrics": {"cv_accuracy": 0.95, "cv_macro_f1": 0.94},
        "trained_at": "2025-01-02T03:04:05+00:00",
    }
    assert classifiers.tenant_intents("other") is None
    publish_own_head(tmp_path)
    classifiers.reload_tenant("shop")
    newer = classifiers.tenant_intents("shop")
    assert newer is not None and newer.version == 2


def test_removing_the_heads_brings_the_general_head_back(
    classifiers: Classifiers, tmp_path: Path
) -> None:
    publish_own_head(tmp_path)  # two versions: both go
    assert remove_versions(tenant_root(tmp_path, "shop"))
    assert not tenant_root(tmp_path, "shop").exists()
    assert [p.name for p in (tmp_path / "tenants").iterdir()] == []  # nothing left aside
    classifiers.reload_tenant("shop")
    assert classifiers.tenant_intents("shop") is None
    [result] = classifiers.intent(SURE_OF_GENERAL[None], "shop")
    assert (result.label, result.source) == ("track_order", "general")
    assert not remove_versions(tenant_root(tmp_path, "shop"))  # nothing to remove


def test_a_tenant_head_of_another_embedder_is_not_in_force(tmp_path: Path) -> None:
    folder = publish_own_head(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["embedding_model"] = "another-model"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    classifiers = general_classifiers(tmp_path)
    assert classifiers.tenant_intents("shop") is None
    assert classifiers.intent(SURE_OF_OWN[None], "shop")[0].source == "general"


# ---------------------------------------------------------------- publishing a fitted head


def clustered(labels: tuple[str, ...], per_label: int) -> tuple[LabelledTexts, np.ndarray]:
    """Examples whose 'embeddings' cluster around one axis per label."""
    rng = np.random.default_rng(0)
    texts, names, vectors = [], [], []
    for axis, label in enumerate(labels):
        for n in range(per_label):
            texts.append(f"{label} example {n}")
            names.append(label)
            vector = rng.normal(0, 0.1, 4).astype(np.float32)
            vector[axis] += 1.0
            vectors.append(vector / np.linalg.norm(vector))
    return LabelledTexts(texts, names), np.stack(vectors).astype(np.float32)


def test_publish_tenant_intents_serves_at_once(classifiers: Classifiers, tmp_path: Path) -> None:
    examples, vectors = clustered(("product_advice", "workshop_booking", "gift_wrapping"), 8)
    identity = EmbedderIdentity(MODEL, None)
    sources = {"upload.jsonl": {"sha256": "0" * 64, "bytes": 123}}
    published, report = publish_tenant_intents(
        tmp_path,
        "shop",
        examples,
        vectors,
        identity=identity,
        embedding_model=MODEL,
        sources=sources,
    )
    assert published.version == 2 and report.examples == 24
    assert sorted(published.intents) == ["gift_wrapping", "product_advice", "workshop_booking"]
    assert set(published.metrics) == {"cv_accuracy", "cv_macro_f1"}
    assert published.trained_at is not None
    manifest = read_manifest(published.folder)
    assert manifest["sources"] == sources and manifest["tenant"] == "shop"
    classifiers.reload_tenant("shop")
    assert classifiers.tenant_intents("shop") == published
    gift = np.array([[0, 0, 1, 0]], dtype=np.float32)
    assert classifiers.intent(gift, "shop")[0].label == "gift_wrapping"


def test_a_cancelled_training_publishes_nothing(tmp_path: Path) -> None:
    examples, vectors = clustered(OWN, 6)
    with pytest.raises(JobCancelledError):
        publish_tenant_intents(
            tmp_path,
            "shop",
            examples,
            vectors,
            identity=EmbedderIdentity(MODEL, None),
            embedding_model=MODEL,
            sources={},
            cancelled=lambda: True,
        )
    assert newest_version_folder(tenant_root(tmp_path, "shop")) is None


# ---------------------------------------------------------------- the examples validator


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


GOOD_ROWS = [{"text": f"which grinder fits {n}", "label": "product_advice"} for n in range(5)] + [
    {"text": f"book the workshop {n}", "label": "workshop_booking"} for n in range(5)
]


def test_good_jsonl_and_csv_read_the_same(tmp_path: Path) -> None:
    from_jsonl = parse_tenant_examples(jsonl(GOOD_ROWS), "jsonl")
    lines = ["text,label"] + [f'"{r["text"]}",{r["label"]}' for r in GOOD_ROWS]
    csv_bytes = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()  # a spreadsheet's BOM
    from_csv = parse_tenant_examples(csv_bytes, "csv")
    assert from_jsonl == from_csv and len(from_csv) == 10
    (tmp_path / "shop.csv").write_bytes(csv_bytes)
    assert load_tenant_examples(tmp_path / "shop.csv") == from_csv  # the CLI's path


@pytest.mark.parametrize(
    ("data", "file_format", "message"),
    [
        (
            jsonl(GOOD_ROWS[:3]) + b"not json\n" + jsonl(GOOD_ROWS[3:]),
            "jsonl",
            "body line 4: not JSON",
        ),
        (jsonl(GOOD_ROWS[:2]) + b'["a", "b"]\n', "jsonl", "body line 3: expected an object"),
        (
            jsonl([*GOOD_ROWS, {"text": "gift wrap it"}]),
            "jsonl",
            "body line 11: empty or missing label",
        ),
        (
            jsonl([*GOOD_ROWS, {"text": " ", "label": "x"}]),
            "jsonl",
            "body line 11: empty or missing text",
        ),
        (jsonl(GOOD_ROWS[:5]), "jsonl", "needs at least two different labels, found 1"),
        (jsonl(GOOD_ROWS[:9]), "jsonl", r"at least 5 examples; too few: workshop_booking \(4\)"),
        (
            jsonl([*GOOD_ROWS, {"text": "x", "label": "l" * (MAX_LABEL_CHARS + 1)}]),
            "jsonl",
            "body line 11: label longer than",
        ),
        (b"", "jsonl", "body: no examples"),
        (
            b"which grinder,product_advice\nbook it,workshop_booking\n",
            "csv",
            "needs a header with the columns 'text' and 'label'",
        ),
        (b"question,intent\nhi,greet\n", "csv", r"found \['intent', 'question'\]"),
        (b"text,label\n", "csv", "body: no examples"),
        (b"text,label\na,b\n,b\n", "csv", "body line 3: empty or missing text"),
        (b"text,label\n\xff\xfe,b\n", "csv", "body: not UTF-8"),
    ],
)
def test_bad_examples_name_the_problem_and_the_line(
    data: bytes, file_format: str, message: str
) -> None:
    with pytest.raises(TrainingDataError, match=message) as raised:
        parse_tenant_examples(data, file_format, where="body")  # type: ignore[arg-type]
    assert raised.value.status_code == 400


def test_oversized_examples_are_413() -> None:
    data = jsonl(GOOD_ROWS)
    with pytest.raises(ExamplesTooLargeError, match=f"at most 100 bytes, these {len(data)}") as big:
        parse_tenant_examples(data, "jsonl", where="body", max_bytes=100)
    assert big.value.status_code == 413 and big.value.error_type == "payload_too_large"
    with pytest.raises(ExamplesTooLargeError, match="at most 9 examples"):
        parse_tenant_examples(data, "jsonl", where="body", max_examples=9)
    assert len(parse_tenant_examples(data, "jsonl", max_bytes=len(data), max_examples=10)) == 10

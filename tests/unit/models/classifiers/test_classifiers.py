"""Sentiment, intent and language classifiers: the shipped heads, and training on small
real subsets in tmp folders.

The shipped heads (``models/classifiers/default_heads``) need no data. The training tests
build source folders that mimic ``../shared/data`` with a few hundred rows of the real
files, and a third of the repository's escalation sets, so training takes seconds;
they skip where that data is absent (a fresh clone).
The figures on the full data are ``bench/quality.py``'s job.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from models.classifiers import (
    Classifiers,
    ClassifiersUnavailableError,
    EmbedderIdentity,
    TrainingDataError,
    classifiers_dir,
    detect_language,
    embedder_identity,
    train_classifiers,
    train_shipped_heads,
    train_tenant_intents,
)
from models.classifiers.head_store import (
    MANIFEST,
    SHIPPED_HEADS_ROOT,
    default_root,
    newest_version_folder,
    shipped_heads_dir,
)
from models.classifiers.text_cues import CUE_FEATURE_NAMES, cue_features, frustration_cues
from models.classifiers.training import RECIPE
from models.classifiers.training_data import BITEXT_CSV
from models.embedder import Embedder
from tests.classifier_sets import INTENTS, build_datasets, build_source, local_set
from tests.servers import REPO

SHIPPED_MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source(tmp_path_factory.mktemp("shared-data"))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_datasets(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, source: Path, datasets: Path
) -> Path:
    """A classifiers folder trained once for the module; tests copy it before changing it."""
    out = classifiers_dir(tmp_path_factory.mktemp("data"))
    report = train_classifiers(embedder, source, out, datasets=datasets)
    assert not report.up_to_date
    return out


def copy_of(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "classifiers"
    shutil.copytree(trained, target)
    return target


@pytest.fixture(scope="module")
def identity() -> EmbedderIdentity:
    """The configured (default) embedder's identity, as the server computes it."""
    return embedder_identity("all-minilm-l6-v2")


def write_examples(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


RETURNS = [
    "I want to send these shoes back",
    "how do I return an item I bought",
    "can I return a jacket that does not fit",
    "I need a return label for my parcel",
    "start a return for my last purchase",
    "the dress is too small, I want to return it",
]
WARRANTY = [
    "is my blender still under warranty",
    "does the warranty cover a broken screen",
    "how long is the warranty on headphones",
    "my kettle broke, can I claim the warranty",
    "warranty repair for my vacuum cleaner",
    "what does the two year warranty include",
]


# ---------------------------------------------------------------- trained heads


def test_round_trip_and_manifest(trained: Path, embedder: Embedder) -> None:
    classifiers = Classifiers.load(trained)
    assert set(classifiers.intent_labels()) == set(INTENTS)
    manifest = classifiers.manifest
    assert manifest["embedding_model"] == embedder.model_name
    assert {"sentiment.npz", "intent.npz", "handover.npz"} == set(manifest["files"])
    assert "datasets/escalation/conversations.jsonl" in manifest["sources"]
    assert "cv_control_fire_rate" in manifest["heads"]["handover"]["metrics"]
    assert str(BITEXT_CSV) in manifest["sources"]
    assert "cv_macro_recall" in manifest["heads"]["sentiment"]["metrics"]
    assert "heldout_accuracy" in manifest["heads"]["intent"]["metrics"]
    texts = ["Where is my package? I want to track my order", "please cancel my order"]
    results = classifiers.intent(embedder.embed_sync(texts))
    assert [r.label for r in results] == ["track_order", "cancel_order"]
    assert all(0 < r.confidence <= 1 for r in results)


def test_obvious_sentiment(trained: Path, embedder: Embedder) -> None:
    classifiers = Classifiers.load(trained)
    texts = [
        "This is the third time my order is late, absolutely unacceptable!!!",
        "Thanks so much, that worked perfectly",
    ]
    angry, happy = classifiers.sentiment(texts, embedder.embed_sync(texts))
    assert angry.label == "negative" and angry.frustrated and angry.score < 0
    assert happy.label == "positive" and not happy.frustrated and happy.score > 0
    assert all(0 < r.confidence <= 1 and -1 <= r.score <= 1 for r in (angry, happy))
    with pytest.raises(ValueError, match="texts but"):
        classifiers.sentiment(texts, embedder.embed_sync(texts[:1]))


def test_frustration_cues() -> None:
    assert frustration_cues("This is the third time, absolutely unacceptable!!!") == 3
    assert frustration_cues("still not delivered") == 0  # a "did not help" cue, not anger
    assert frustration_cues("C'est inadmissible, j'en ai marre !!") == 3
    assert frustration_cues("I write to express my exasperation; I am appalled.") == 2
    assert frustration_cues("太差了，我受够了") == 2
    assert frustration_cues("Slightly frustrating that the app logged me out") == 0
    assert frustration_cues("有点无语") == 0 and frustration_cues("ça m'énerve un peu") == 0
    assert frustration_cues("WHY IS THIS SO SLOW") == 1  # shouted words
    assert frustration_cues("Thanks, that worked perfectly") == 0
    assert frustration_cues("I am sad my order is late") == 0
    assert frustration_cues("honestly fuming, you lot are taking the piss") == 2


def test_sarcasm_markers_are_a_cue_of_their_own() -> None:
    """Praise or thanks wrapped around a failure; plain requests and thanks carry none."""
    sarcasm = CUE_FEATURE_NAMES.index("sarcasm_markers")
    ironic = [
        "Oh brilliant, the update logged me out again. Thanks so much.",
        "Bravo, encore une semaine sans ma commande. Merci pour rien.",
        "好家伙，又把我登出了，谢谢你们啊",
    ]
    plain = ["Where is my order?", "Merci de livrer au point relais.", "谢谢，问题解决了"]
    assert all(row[sarcasm] > 0 for row in cue_features(ironic))
    assert not any(row[sarcasm] for row in cue_features(plain))


def test_unchanged_data_is_up_to_date_and_force_retrains(
    trained: Path, tmp_path: Path, embedder: Embedder, source: Path, datasets: Path
) -> None:
    out = copy_of(trained, tmp_path)
    before = newest_version_folder(default_root(out))
    report = train_classifiers(embedder, source, out, datasets=datasets)
    assert report.up_to_date and "up to date" in report.lines()[0]
    assert newest_version_folder(default_root(out)) == before
    changed = tmp_path / "changed"
    shutil.copytree(source, changed)
    with (changed / BITEXT_CSV).open("a", encoding="utf-8") as handle:
        handle.write(',,"where is my parcel, track it please",track_order,,,,,ORDER,B,ok\n')
    assert not train_classifiers(embedder, changed, out, datasets=datasets).up_to_date
    assert newest_version_folder(default_root(out)) != before


def test_tenant_head_overrides_default(
    tmp_path: Path, embedder: Embedder, identity: EmbedderIdentity
) -> None:
    out = tmp_path / "classifiers"  # no local default set: the shipped heads serve
    classifiers = Classifiers.load(out, embedder=identity)
    assert classifiers.shipped
    shipped_intents = set(classifiers.intent_labels())
    assert classifiers.intent_labels("acme") == classifiers.intent_labels()  # none yet
    examples = write_examples(
        tmp_path / "acme.csv",
        [(t, "returns") for t in RETURNS] + [(t, "warranty") for t in WARRANTY],
    )
    report = train_tenant_intents(embedder, examples, out, "acme")
    assert report.heads["intent"].examples == 12
    classifiers.reload_tenant("acme")  # trained after load: picked up
    assert sorted(classifiers.intent_labels("acme")) == ["returns", "warranty"]
    vectors = embedder.embed_sync(["my toaster stopped working, is it covered by warranty?"])
    assert classifiers.intent(vectors, tenant="acme")[0].label == "warranty"
    assert classifiers.intent(vectors, tenant="other")[0].label in shipped_intents
    assert classifiers.intent(vectors)[0].label in shipped_intents
    reloaded = Classifiers.load(out, embedder=identity)
    assert sorted(reloaded.intent_labels("acme")) == ["returns", "warranty"]
    other = EmbedderIdentity(identity.name, "0" * 64)  # same name, other weights
    local_set(tmp_path / "other", embedder=other)
    shutil.copytree(out / "tenants", tmp_path / "other" / "tenants")
    served = Classifiers.load(tmp_path / "other", embedder=other, shipped=None)
    assert served.intent_labels("acme") == served.intent_labels()  # its tenant head is refused


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "columns 'text' and 'label'"),
        ("header-only.csv", "text,label\n", "no examples"),
        ("wrong.csv", "question,intent\nhi,greet\n", "columns 'text' and 'label'"),
        ("one-label.csv", "text,label\n" + "hello there,greet\n" * 6, "two different labels"),
        (
            "thin.csv",
            "text,label\n" + "a return please,returns\n" * 6 + "warranty?,warranty\n" * 2,
            "too few: warranty (2)",
        ),
        ("blank.csv", "text,label\n,returns\n", "empty or missing text"),
        ("bad.jsonl", '{"text": "hi", "label": "x"}\nnot json\n', "line 2: not JSON"),
        ("keys.jsonl", '{"question": "hi", "label": "x"}\n', "empty or missing text"),
        ("examples.txt", "hi\n", "use a .csv"),
    ],
)
def test_bad_examples_files_are_clear_errors(
    tmp_path: Path, embedder: Embedder, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainingDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_tenant_intents(embedder, path, tmp_path / "classifiers", "acme")


def test_jsonl_examples_and_bad_tenant(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "acme.jsonl"
    rows = [{"text": t, "label": "returns"} for t in RETURNS]
    rows += [{"text": t, "label": "warranty"} for t in WARRANTY]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = train_tenant_intents(embedder, path, tmp_path / "classifiers", "acme")
    assert report.heads["intent"].labels == 2
    with pytest.raises(Exception, match="must match"):
        train_tenant_intents(embedder, path, tmp_path / "classifiers", "../escape")


def test_corrupt_or_missing_heads_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ClassifiersUnavailableError, match="concierge models train-classifiers"):
        Classifiers.load(tmp_path / "nothing-here", shipped=None)
    with pytest.raises(ClassifiersUnavailableError, match="no classifiers at"):
        Classifiers.load(tmp_path / "nothing-here", shipped=tmp_path / "not-shipped")
    assert ClassifiersUnavailableError.status_code == 503

    file = local_set(tmp_path / "truncated")
    data = (file / "intent.npz").read_bytes()
    (file / "intent.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ClassifiersUnavailableError, match=r"intent\.npz is \d+ bytes"):
        Classifiers.load(tmp_path / "truncated", shipped=None)
    assert Classifiers.load(tmp_path / "truncated").shipped  # the shipped set stands in

    file = local_set(tmp_path / "altered")
    flipped = bytearray((file / "sentiment.npz").read_bytes())
    flipped[-100] ^= 0xFF
    (file / "sentiment.npz").write_bytes(bytes(flipped))
    with pytest.raises(ClassifiersUnavailableError, match=r"sentiment\.npz fails its SHA-256"):
        Classifiers.load(tmp_path / "altered", shipped=None)


def test_missing_source_is_a_clear_error(tmp_path: Path, embedder: Embedder) -> None:
    with pytest.raises(TrainingDataError, match=r"does not exist.*--data DIR"):
        train_classifiers(embedder, tmp_path / "absent", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match="training data missing"):
        train_classifiers(embedder, tmp_path / "empty", tmp_path / "out")


# ---------------------------------------------------------------- shipped heads


def test_shipped_heads_are_small_described_and_serve(
    tmp_path: Path, embedder: Embedder, identity: EmbedderIdentity
) -> None:
    shipped = shipped_heads_dir(identity.name)
    files = {path.name: path.stat().st_size for path in shipped.iterdir()}
    assert set(files) == {MANIFEST, "sentiment.npz", "intent.npz", "handover.npz"}
    assert sum(files.values()) < SHIPPED_MAX_BYTES
    classifiers = Classifiers.load(classifiers_dir(tmp_path), embedder=identity)
    assert classifiers.shipped and classifiers.version_folder == shipped
    manifest = classifiers.manifest
    assert manifest["recipe"] == RECIPE, "training changed: run `make classifier-heads`"
    for name in ("sentiment", "intent", "handover"):
        head = manifest["heads"][name]
        assert head["embedder"] == identity.as_manifest()
        assert len(head["data"]["fingerprint"]) == 64 and head["data"]["files"]
        assert head["trained_at"] and head["heldout"]["split"]
    assert manifest["heads"]["intent"]["heldout"]["accuracy"] > 0.9
    assert manifest["heads"]["sentiment"]["heldout"]["negative_recall"] > 0.7
    assert manifest["heads"]["handover"]["heldout"]["control_fire_rate"] <= 0.1
    assert 0.4 <= classifiers.handover_min_probability < 1.0
    assert not any("/" in str(v) for v in manifest.values() if isinstance(v, str)), (
        "no machine paths in the shipped manifest"
    )

    texts = [
        "This is the third time my order is late, absolutely unacceptable!!!",
        "Thanks so much, that worked perfectly",
        "please cancel my order",
    ]
    vectors = embedder.embed_sync(texts)
    angry, happy, _ = classifiers.sentiment(texts, vectors)
    assert angry.label == "negative" and angry.frustrated
    assert happy.label == "positive" and not happy.frustrated
    assert classifiers.intent(vectors)[2].label == "cancel_order"


def test_heads_of_another_embedder_are_refused_with_the_retrain_command(
    tmp_path: Path, identity: EmbedderIdentity
) -> None:
    for other, why in (
        (EmbedderIdentity("multilingual-e5-small", "1" * 64), "no shipped heads for the "),
        (EmbedderIdentity(identity.name, "2" * 64), "the configured embedder is "),  # new weights
    ):
        with pytest.raises(ClassifiersUnavailableError) as refused:
            Classifiers.load(tmp_path, embedder=other)
        message = refused.value.message
        assert why in message and other.name in message
        assert "concierge models train-classifiers --data DIR" in message
        assert "make classifier-heads" in message


def test_which_default_set_wins(tmp_path: Path, identity: EmbedderIdentity) -> None:
    """A local set wins when it fits the embedder and is not older training code."""
    local = local_set(tmp_path / "current")
    assert Classifiers.load(tmp_path / "current", embedder=identity).version_folder == local

    local_set(tmp_path / "old-recipe", recipe=RECIPE - 1)
    assert Classifiers.load(tmp_path / "old-recipe", embedder=identity).shipped
    # with nothing better on offer, an older local set still serves
    assert not Classifiers.load(tmp_path / "old-recipe", embedder=identity, shipped=None).shipped

    other = EmbedderIdentity("multilingual-e5-small", "1" * 64)
    local_set(tmp_path / "other", embedder=other)
    assert Classifiers.load(tmp_path / "other", embedder=identity).shipped
    # under that other embedder the local set is the one that fits; the shipped one does not
    assert not Classifiers.load(tmp_path / "other", embedder=other).shipped


def test_train_shipped_heads_writes_the_shipped_layout(
    tmp_path: Path,
    embedder: Embedder,
    source: Path,
    datasets: Path,
    identity: EmbedderIdentity,
) -> None:
    heads = tmp_path / "default_heads"
    report = train_shipped_heads(embedder, source, heads, datasets=datasets)
    assert not report.up_to_date
    assert train_shipped_heads(embedder, source, heads, datasets=datasets).up_to_date
    loaded = Classifiers.load(tmp_path / "data", embedder=identity, shipped=heads)
    assert loaded.shipped and set(loaded.intent_labels()) == set(INTENTS)
    assert "source_dir" not in loaded.manifest
    assert [p.name for p in tmp_path.iterdir()] == ["default_heads"]  # no staging left


def test_the_shipped_heads_are_package_data() -> None:
    """A non-editable install carries the heads: pyproject declares every file of them."""
    import fnmatch
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["models.classifiers"]
    package = SHIPPED_HEADS_ROOT.parent
    shipped = [path for path in SHIPPED_HEADS_ROOT.rglob("*") if path.is_file()]
    assert {path.parent.name for path in shipped} >= {"all-minilm-l6-v2", "embeddinggemma-300m"}
    for path in shipped:
        relative = str(path.relative_to(package))
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# ---------------------------------------------------------------- language


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Where is my order? It has been two weeks since I paid.", "en"),
        ("Wo ist meine Bestellung? Ich warte seit zwei Wochen.", "de"),
        ("Où est ma commande ? J'attends depuis deux semaines.", "fr"),
        ("我的订单在哪里？我已经等了两个星期了。", "zh"),
    ],
)
def test_detect_language(text: str, code: str) -> None:
    result = detect_language(text)
    assert result.code == code
    assert result.confidence > 0.8


@pytest.mark.parametrize("text", ["ok", "Danke!", "12345", "   "])
def test_short_texts_fall_back_to_english_with_low_confidence(text: str) -> None:
    result = detect_language(text)
    assert result.code == "en" and result.confidence <= 0.2


# ---------------------------------------------------------------- CLI

"""``concierge models train-classifiers`` and ``tune-embedder``, run as a user would run them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from models.classifiers.head_store import MANIFEST
from models.prepare import MANIFEST_NAME
from tests.classifier_sets import build_datasets, build_source
from tests.cli import invoke, run_cli


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source(tmp_path_factory.mktemp("shared-data"))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_datasets(tmp_path_factory.mktemp("datasets"))


def test_cli_trains_then_reports_up_to_date(source: Path, datasets: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sets = ("--datasets", str(datasets))
    first = concierge("--source", str(source), *sets, data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "sentiment:" in first.stdout and "cv_macro_recall" in first.stdout
    assert str(data_dir / "classifiers") in first.stdout
    second = concierge("--source", str(source), *sets, data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout

    missing = concierge("--data", str(tmp_path / "absent"), data_dir=data_dir)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    no_sets = concierge("--source", str(source), "--datasets", str(tmp_path), data_dir=data_dir)
    assert no_sets.returncode == 2 and "support messages are missing" in no_sets.stderr
    alone = concierge("--tenant", "acme", data_dir=data_dir)
    assert alone.returncode == 2 and "go together" in alone.stderr

    heads = tmp_path / "heads"
    shipped = concierge("--data", str(source), *sets, "--out", str(heads), data_dir=data_dir)
    assert shipped.returncode == 0, shipped.stderr
    assert {p.name for p in heads.iterdir()} == {
        MANIFEST,
        "sentiment.npz",
        "intent.npz",
        "handover.npz",
    }
    both = concierge(
        "--tenant", "acme", "--intents", "x.csv", "--out", str(heads), data_dir=data_dir
    )
    assert both.returncode == 2 and "--out" in both.stderr


def test_cli_without_data_points_at_the_data_and_the_shipped_heads(tmp_path: Path) -> None:
    absent = concierge("--data", str(tmp_path / "absent"), data_dir=tmp_path / "data")
    assert absent.returncode == 2
    assert "does not exist" in absent.stderr and "ship trained" in absent.stderr


def concierge(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``concierge models train-classifiers ARGS`` on ``data_dir``."""
    return invoke(
        "models",
        "train-classifiers",
        *args,
        env={"CONCIERGE_DATA_DIR": str(data_dir)},
        timeout=300,
    )


JARGON = {
    "returns.md": (
        "Returns and refunds",
        "You can send most items back within 30 days of delivery. Print the label from your "
        "account and hand the parcel to any post office; we refund within five working days.",
        ["How does Boomerang work?", "Can I Boomerang a kettle I opened?",
         "Is Boomerang free of charge?", "How many days do I have for Boomerang?",
         "Can I Boomerang a gift?", "Where do I drop a Boomerang parcel?"],
    ),
    "points.md": (
        "Loyalty programme",
        "Members collect one point per euro spent. One hundred points are worth five euros "
        "off a later order. Points stay valid for two years.",
        ["How do I earn Sparkles?", "What are Sparkles worth?", "Do Sparkles expire?",
         "Can I pay with Sparkles?", "Why did I not get Sparkles for my order?",
         "Do I get Sparkles on sale items?"],
    ),
    "delivery.md": (
        "Express delivery",
        "Orders placed before noon arrive the next working day for 6.90 euros. Express "
        "delivery covers the main cities; the checkout tells you whether yours is included.",
        ["How fast is Lift?", "What does Lift cost?", "Can I get Lift on Sundays?",
         "Is Lift available in my town?", "Why was my Lift order late?",
         "Can I switch my order to Lift?"],
    ),
    "lockers.md": (
        "Parcel lockers",
        "Choose a locker at checkout and we send you a six-digit code when the parcel is in. "
        "The locker keeps it for seven days; anyone with the code can open it.",
        ["How do I use a Nest?", "How long does my parcel stay in the Nest?",
         "I lost my Nest code, what now?", "Is there a Nest near me?",
         "Can someone else open my Nest?", "Does Nest cost extra?"],
    ),
}  # fmt: skip
"""A shop's own names ("Boomerang" for returns) that only its questions tie to articles:
what a general embedder cannot know and a tuned one learns."""


def test_tune_embedder_publishes_a_better_model_and_reindexes_the_tenant(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path / "data")}
    corpus = tmp_path / "kb"
    corpus.mkdir()
    for name, (title, body, questions) in JARGON.items():
        front = "".join(f"  - {q}\n" for q in questions)
        (corpus / name).write_text(f"---\nquestions:\n{front}---\n# {title}\n\n{body}\n")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "warranty.md").write_text("# Warranty\n\nTwo years on appliances.\n")
    for tenant, folder in (("jargon", corpus), ("plain", tmp_path / "plain")):
        ingested = invoke("kb", "ingest", str(folder), "--tenant", tenant, env=env)
        assert ingested.returncode == 0, ingested.stderr

    tuned = tune("--tenant", "jargon", "--epochs", "3", "--learning-rate", "1e-4", env=env)
    assert tuned.returncode == 0, tuned.stderr
    assert "24 question-article pairs over 4 articles" in tuned.stdout
    assert "training:" in tuned.stderr and "step/s" in tuned.stderr  # the progress bar
    published = list((tmp_path / "data" / "models" / "tenants" / "jargon").glob("embedder-*"))
    assert len(published) == 1 and str(published[0]) in tuned.stdout
    tuning = json.loads((published[0] / "tuning.json").read_text())
    assert tuning["after"]["recall_at_1"] > tuning["before"]["recall_at_1"]
    assert tuning["base"]["model"] == "all-minilm-l6-v2" and len(tuning["base"]["sha256"]) == 64
    assert tuning["pairs"] == {"total": 24, "train": 20, "held_out": 4, "articles": 4}
    assert tuning["split"]["seed"] == 0 and (published[0] / MANIFEST_NAME).is_file()

    stats = json.loads(run_cli("kb", "stats", "--tenant", "jargon", env=env))
    assert stats["embedding_model"] == published[0].name and stats["version"] == 2
    other = json.loads(run_cli("kb", "stats", "--tenant", "plain", env=env))
    assert other["embedding_model"] == "all-minilm-l6-v2"  # another tenant keeps the base
    found = run_cli("kb", "search", "Is Boomerang free?", "--tenant", "jargon", env=env)
    assert found.splitlines()[0].split()[2] == "returns.md"

    unpaired = tune("--tenant", "plain", env=env)
    assert unpaired.returncode == 2
    assert "tenant plain has 0 example questions" in unpaired.stderr
    assert "needs at least 10" in unpaired.stderr and "Traceback" not in unpaired.stderr
    unknown = tune("--tenant", "initech", env=env)
    assert unknown.returncode == 2 and "has no KB documents" in unknown.stderr


def tune(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``concierge models tune-embedder ARGS``."""
    return invoke("models", "tune-embedder", *args, env=env, timeout=300)

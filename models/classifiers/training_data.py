"""Reading labelled examples for the heads, with errors that say what to fix.

The default heads ship trained (``models/classifiers/default_heads/``); only retraining
them reads data, from a folder laid out like the project's ``../shared/data``
(``--data DIR``, else ``Settings.training_data_dir``), which never enters the repository:

* intent: Bitext customer support (``instruction`` -> ``intent``, 27 intents). A fixed,
  stratified 20% of it is held out (``bitext_split``) and never trained on, so the
  accuracy ``bench/quality.py`` reports on it is an honest estimate;
* sentiment: the 2,000 TweetEval sentiment ``val`` tweets (0 negative, 1 neutral,
  2 positive), beside the repository's hand-labelled support messages and Bitext's
  requests (``support_sentiment.py``). TweetEval's sentiment ``test`` split is an evaluation set and
  is never read here.

A tenant's own intents come from a CSV (``text,label`` header) or JSONL
(``{"text": ..., "label": ...}`` per line) file, or the same bytes uploaded to
``PUT /admin/tenants/{tenant}/intents``: ``parse_tenant_examples`` validates both.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.errors import InvalidRequestError, PayloadTooLargeError
from core.json_input import read_json
from models.prepare import sha256_file

BITEXT_CSV = Path("bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv")
SENTIMENT_TEXT = Path("tweeteval/sentiment/val_text.txt")
SENTIMENT_LABELS = Path("tweeteval/sentiment/val_labels.txt")
SENTIMENT_MAPPING = Path("tweeteval/sentiment/mapping.txt")
SENTIMENT_LABEL_NAMES = ("negative", "neutral", "positive")
INTENT_SOURCES = (BITEXT_CSV,)
SENTIMENT_SOURCES = (SENTIMENT_TEXT, SENTIMENT_LABELS, SENTIMENT_MAPPING)
DEFAULT_SOURCES = (*INTENT_SOURCES, *SENTIMENT_SOURCES)
DATA_HINT = (
    "the labelled data is Bitext customer support and TweetEval sentiment, laid "
    "out as in the project's ../shared/data; pass --data DIR or set "
    "CONCIERGE_TRAINING_DATA_DIR. Serving needs none of it: the default heads ship trained"
)

REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"
"""The project's own hand-written sets (support messages, escalation conversations): they
ship in the repository, unlike the public data read from ``--data``."""
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 20_240_611
MIN_EXAMPLES_PER_LABEL = 5
MAX_TEXT_CHARS = 4_000
MAX_LABEL_CHARS = 64  # labels become metric label values and analytics keys
ExampleFormat = Literal["csv", "jsonl"]
EXAMPLE_SUFFIXES: dict[str, ExampleFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class TrainingDataError(InvalidRequestError):
    """A training file is missing, empty, or not in the expected shape."""

    error_type = "invalid_training_data"


class ExamplesTooLargeError(PayloadTooLargeError):
    """A tenant's examples exceed the bytes or the count one upload may carry."""


@dataclass(frozen=True)
class LabelledTexts:
    """Texts and their labels, in file order."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: npt.NDArray[np.int64]) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in indices], [self.labels[i] for i in indices])


def source_hashes(source: Path) -> dict[str, dict[str, object]]:
    """SHA-256 and size of every default source file; refuses a missing one."""
    if not source.is_dir():
        raise TrainingDataError(f"training data folder {source} does not exist; {DATA_HINT}")
    missing = [str(source / name) for name in DEFAULT_SOURCES if not (source / name).is_file()]
    if missing:
        raise TrainingDataError(
            f"training data missing in {source}: {', '.join(missing)}; {DATA_HINT}"
        )
    return {
        str(name): {"sha256": sha256_file(source / name), "bytes": (source / name).stat().st_size}
        for name in DEFAULT_SOURCES
    }


def load_bitext(source: Path) -> LabelledTexts:
    """Bitext ``instruction`` -> ``intent``, every row."""
    path = source / BITEXT_CSV
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"instruction", "intent"} <= set(reader.fieldnames or ()):
            raise TrainingDataError(f"{path}: needs the columns 'instruction' and 'intent'")
        rows = [(row["instruction"].strip(), row["intent"].strip()) for row in reader]
    rows = [(text, label) for text, label in rows if text and label]
    if not rows:
        raise TrainingDataError(f"{path}: no rows")
    return LabelledTexts([text for text, _ in rows], [label for _, label in rows])


def bitext_split(
    data: LabelledTexts,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train, held-out) row indices: per intent, a seeded shuffle, 20% held out.

    Pure numpy with a fixed seed, so training and ``bench/quality.py`` agree on the split
    whatever the scikit-learn version.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    labels = np.asarray(data.labels)
    train: list[int] = []
    heldout: list[int] = []
    for label in sorted(set(data.labels)):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        cut = math.ceil(len(rows) * HELDOUT_FRACTION) if len(rows) > 1 else 0
        heldout.extend(int(i) for i in rows[:cut])
        train.extend(int(i) for i in rows[cut:])
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(heldout), dtype=np.int64)


def load_sentiment(source: Path) -> LabelledTexts:
    """TweetEval sentiment ``val``: tweets and their label names."""
    names = _mapping(source / SENTIMENT_MAPPING)
    if tuple(names[i] for i in sorted(names)) != SENTIMENT_LABEL_NAMES:
        raise TrainingDataError(
            f"{source / SENTIMENT_MAPPING}: expected {SENTIMENT_LABEL_NAMES}, got {names}"
        )
    texts = (source / SENTIMENT_TEXT).read_text(encoding="utf-8").splitlines()
    ids = (source / SENTIMENT_LABELS).read_text(encoding="utf-8").split()
    if len(texts) != len(ids) or not texts:
        raise TrainingDataError(
            f"{source / SENTIMENT_TEXT} has {len(texts)} lines, "
            f"{source / SENTIMENT_LABELS} has {len(ids)} labels"
        )
    try:
        labels = [names[int(i)] for i in ids]
    except (KeyError, ValueError) as exc:
        raise TrainingDataError(f"{source / SENTIMENT_LABELS}: unknown label {exc}") from exc
    return LabelledTexts([t.strip() for t in texts], labels)


def _mapping(path: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            number, _, name = line.strip().partition("\t")
            names[int(number)] = name.strip()
    return names


def load_tenant_examples(path: Path) -> LabelledTexts:
    """A tenant's labelled examples from a ``.csv`` (text,label) or ``.jsonl`` file.

    The file goes through ``parse_tenant_examples``, the validator the admin API's upload
    uses too, so a file the CLI accepts is a body the API accepts and the other way round.
    The CLI sets no size limits: an operator on the machine may train on more than an
    upload may carry.
    """
    if not path.is_file():
        raise TrainingDataError(f"examples file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in EXAMPLE_SUFFIXES:
        raise TrainingDataError(f"{path}: use a .csv (text,label) or .jsonl file")
    return parse_tenant_examples(path.read_bytes(), EXAMPLE_SUFFIXES[suffix], where=str(path))


def parse_tenant_examples(
    data: bytes,
    file_format: ExampleFormat,
    *,
    where: str = "examples",
    max_bytes: int | None = None,
    max_examples: int | None = None,
) -> LabelledTexts:
    """Validate a tenant's examples (the bytes of a CSV or JSONL file) and return them.

    Refuses data over ``max_bytes`` or with more than ``max_examples`` examples
    (``ExamplesTooLargeError``, a 413), text that is not UTF-8, a CSV without the
    ``text,label`` header, a JSONL line that is not a JSON object, empty or missing texts
    or labels, texts over ``MAX_TEXT_CHARS``, fewer than two labels, and labels with fewer
    than ``MIN_EXAMPLES_PER_LABEL`` examples (cross-validation and a sensible head need a
    few of each). Every message starts with ``where`` and names the offending line, so
    the CLI's and the API's errors read the same.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise ExamplesTooLargeError(
            f"{where}: the examples are at most {max_bytes} bytes, these {len(data)}"
        )
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's CSV may start with a BOM
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{where}: not UTF-8 text ({exc})") from exc
    if file_format == "csv":
        rows = _read_csv_examples(text, where, max_examples)
    else:
        rows = _read_jsonl_examples(text, where, max_examples)
    if not rows:
        raise TrainingDataError(f"{where}: no examples")
    counts = Counter(label for _, label in rows)
    if len(counts) < 2:
        raise TrainingDataError(
            f"{where}: needs at least two different labels, found {len(counts)}"
        )
    thin = sorted(label for label, n in counts.items() if n < MIN_EXAMPLES_PER_LABEL)
    if thin:
        listed = ", ".join(f"{label} ({counts[label]})" for label in thin)
        raise TrainingDataError(
            f"{where}: each label needs at least {MIN_EXAMPLES_PER_LABEL} examples; "
            f"too few: {listed}"
        )
    return LabelledTexts([text for text, _ in rows], [label for _, label in rows])


def _checked(where: str, line: int, text: object, label: object) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise TrainingDataError(f"{where} line {line}: empty or missing text")
    if not isinstance(label, str) or not label.strip():
        raise TrainingDataError(f"{where} line {line}: empty or missing label")
    if len(text) > MAX_TEXT_CHARS:
        raise TrainingDataError(
            f"{where} line {line}: text longer than {MAX_TEXT_CHARS} characters"
        )
    if len(label) > MAX_LABEL_CHARS:
        raise TrainingDataError(
            f"{where} line {line}: label longer than {MAX_LABEL_CHARS} characters"
        )
    return text.strip(), label.strip()


def _count_checked(rows: list[tuple[str, str]], where: str, max_examples: int | None) -> None:
    if max_examples is not None and len(rows) > max_examples:
        raise ExamplesTooLargeError(f"{where}: at most {max_examples} examples at a time")


def _read_csv_examples(text: str, where: str, max_examples: int | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = set(reader.fieldnames or ())
        if not {"text", "label"} <= columns:
            raise TrainingDataError(
                f"{where}: needs a header with the columns 'text' and 'label', "
                f"found {sorted(columns) or 'none'}"
            )
        for row in reader:
            rows.append(_checked(where, reader.line_num, row.get("text"), row.get("label")))
            _count_checked(rows, where, max_examples)
    except csv.Error as exc:
        raise TrainingDataError(f"{where}: not a readable CSV file ({exc})") from exc
    return rows


def _read_jsonl_examples(text: str, where: str, max_examples: int | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = read_json(line)
        except ValueError as exc:
            raise TrainingDataError(f"{where} line {number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise TrainingDataError(f"{where} line {number}: expected an object with text, label")
        rows.append(_checked(where, number, record.get("text"), record.get("label")))
        _count_checked(rows, where, max_examples)
    return rows

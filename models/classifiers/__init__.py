"""Sentiment, intent and language of a customer message, for the reply pipeline.

Sentiment and intent are small heads over the sentence embeddings the pipeline computes
anyway (``models.embedder``), stored as verified ``.npz`` arrays plus a manifest. The
default heads ship trained inside this package (``default_heads/``, ~60 KB), so serving
and testing need no labelled data; ``make classifier-heads DATA=DIR`` retrains them.
A local set trained by ``concierge models train-classifiers --data DIR`` under
``<data_dir>/classifiers`` (``classifiers_dir``) overrides them, and tenants' own intent
heads live there too (``classifier_set`` says which set wins, and how a tenant's head
falls back to the general one, or to ``UNKNOWN_INTENT``, below a confidence). Every set records the
embedder it was trained on and is refused under another one. Language detection is an
offline n-gram model (``py3langid``). Importing this package loads no model and no
scikit-learn; training imports scikit-learn when it runs.
"""

from models.classifiers.classifier_set import (
    UNKNOWN_INTENT,
    Classifiers,
    IntentResult,
    SentimentResult,
)
from models.classifiers.embedder_identity import EmbedderIdentity, embedder_identity
from models.classifiers.handover_head import reading_units
from models.classifiers.head_store import (
    SHIPPED_HEADS_DIR,
    ClassifiersUnavailableError,
    TenantIntents,
    classifiers_dir,
    shipped_heads_dir,
)
from models.classifiers.language import LanguageResult, detect_language
from models.classifiers.training import (
    TrainingReport,
    publish_tenant_intents,
    train_classifiers,
    train_shipped_heads,
    train_tenant_intents,
)
from models.classifiers.training_data import (
    ExampleFormat,
    ExamplesTooLargeError,
    LabelledTexts,
    TrainingDataError,
    parse_tenant_examples,
)

__all__ = [
    "SHIPPED_HEADS_DIR",
    "UNKNOWN_INTENT",
    "Classifiers",
    "ClassifiersUnavailableError",
    "EmbedderIdentity",
    "ExampleFormat",
    "ExamplesTooLargeError",
    "IntentResult",
    "LabelledTexts",
    "LanguageResult",
    "SentimentResult",
    "TenantIntents",
    "TrainingDataError",
    "TrainingReport",
    "classifiers_dir",
    "detect_language",
    "embedder_identity",
    "parse_tenant_examples",
    "publish_tenant_intents",
    "reading_units",
    "shipped_heads_dir",
    "train_classifiers",
    "train_shipped_heads",
    "train_tenant_intents",
]

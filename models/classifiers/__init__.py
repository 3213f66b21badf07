"""Sentiment, intent and language of a customer message, for the reply pipeline.

Sentiment and intent are small heads over the sentence embeddings the pipeline computes
anyway (``models.embedder``), trained from data files by
``concierge models train-classifiers`` and stored as verified ``.npz`` arrays under
``<data_dir>/classifiers`` (``classifiers_dir``). Language detection is an offline
n-gram model (``py3langid``). Importing this package loads no model and no
scikit-learn; training imports scikit-learn when it runs.
"""

from models.classifiers.classifier_set import Classifiers, IntentResult, SentimentResult
from models.classifiers.head_store import ClassifiersUnavailableError, classifiers_dir
from models.classifiers.language import LanguageResult, detect_language
from models.classifiers.training import TrainingReport, train_classifiers, train_tenant_intents
from models.classifiers.training_data import TrainingDataError

__all__ = [
    "Classifiers",
    "ClassifiersUnavailableError",
    "IntentResult",
    "LanguageResult",
    "SentimentResult",
    "TrainingDataError",
    "TrainingReport",
    "classifiers_dir",
    "detect_language",
    "train_classifiers",
    "train_tenant_intents",
]

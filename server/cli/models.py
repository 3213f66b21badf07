"""``concierge models list|prepare|train-classifiers|tune-embedder``: the models, the
classifier heads and tenants' own tuned embedders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from server.config import Settings


def add_models_commands(commands: Any) -> None:
    models = commands.add_parser("models", help="list and prepare models")
    model_commands = models.add_subparsers(title="models commands")
    listing = model_commands.add_parser("list", help="registered models and their state")
    listing.set_defaults(handler=_models_list)
    prepare = model_commands.add_parser("prepare", help="convert/verify a model's weights")
    prepare.add_argument("names", nargs="*", help="model names (default: the configured ones)")
    prepare.set_defaults(handler=_models_prepare)
    train = model_commands.add_parser(
        "train-classifiers",
        help="retrain the sentiment and intent heads (the default ones ship trained; "
        "skipped when the data is unchanged)",
    )
    train.add_argument(
        "--data",
        "--source",
        dest="source",
        type=Path,
        help="labelled data folder laid out like ../shared/data (Bitext, TweetEval; "
        "default: CONCIERGE_TRAINING_DATA_DIR)",
    )
    train.add_argument(
        "--datasets",
        type=Path,
        help="the project's hand-labelled sets (support-sentiment/, escalation/; default: "
        "the checkout's datasets/ folder)",
    )
    train.add_argument(
        "--out",
        type=Path,
        help="write the heads into this folder in the shipped layout (e.g. "
        "models/classifiers/default_heads) instead of a local set under the data directory",
    )
    train.add_argument("--force", action="store_true", help="retrain even if up to date")
    train.add_argument("--tenant", help="train this tenant's own intent head (needs --intents)")
    train.add_argument(
        "--intents", type=Path, help="the tenant's examples: .csv (text,label) or .jsonl"
    )
    train.set_defaults(handler=_models_train_classifiers)
    tune = model_commands.add_parser(
        "tune-embedder",
        help="fine-tune an embedder on a tenant's example questions and their articles; "
        "publish it for that tenant if it ranks held-out questions better, then reindex",
    )
    tune.add_argument("--tenant", required=True, help="the tenant whose KB is tuned for")
    tune.add_argument("--base", help="the model to start from (default: CONCIERGE_EMBEDDING_MODEL)")
    tune.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of each article's questions held out to judge by (default 0.2)",
    )
    tune.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    tune.add_argument("--epochs", type=int, default=3)
    tune.add_argument("--batch-size", type=int, default=32, help="pairs per training step")
    tune.add_argument("--learning-rate", type=float, default=5e-5)
    tune.add_argument(
        "--max-seq-length", type=int, default=128, help="tokens per text while training"
    )
    tune.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )
    tune.set_defaults(handler=_models_tune_embedder)


def _models_list(_: argparse.Namespace, settings: Settings) -> int:
    from models.prepare import models_dir, verify_folder
    from models.registry import (
        ChunkedPyPIArchive,
        ModelRegistry,
        NumberedPyPIParts,
        PackagedGGUF,
    )

    rows = [("NAME", "TASK", "SOURCE", "STATE")]
    for spec in ModelRegistry().specs():
        source = spec.source
        if isinstance(source, PackagedGGUF):
            problem = verify_folder(models_dir(settings.data_dir) / spec.name)
            state = "prepared" if problem is None else problem
            where = f"pypi:{source.package}/{source.filename}"
        elif isinstance(source, ChunkedPyPIArchive):
            problem = verify_folder(models_dir(settings.data_dir) / spec.name)
            state = "prepared" if problem is None else problem
            where = f"pypi:{source.package} {source.versions[0]}..{source.versions[-1]}"
        elif isinstance(source, NumberedPyPIParts):
            problem = verify_folder(models_dir(settings.data_dir) / spec.name)
            state = "prepared" if problem is None else problem
            where = f"pypi:{source.package.format(n='1')}..{source.parts} {source.version}"
        else:
            state = "ready (no conversion)"
            where = f"pypi:{getattr(source, 'package', '')}"
        rows.append((spec.name, spec.task.value, where, state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n")
    return 0


def _models_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from models.prepare import prepare_model
    from models.registry import ModelRegistry, ModelTask

    registry = ModelRegistry()
    wanted = args.names or [settings.model, settings.embedding_model]
    for name in wanted:
        task = ModelTask.EMBED if name == settings.embedding_model else ModelTask.GENERATE
        prepared = prepare_model(registry.resolve(name, task), Path(settings.data_dir))
        verb = "converted" if prepared.converted else "ready"
        sys.stdout.write(f"{name}: {verb} at {prepared.location}\n")
    return 0


def _models_train_classifiers(args: argparse.Namespace, settings: Settings) -> int:
    """Retrain heads: a local default set (overrides the shipped one), the shipped set
    itself (``--out``), or one tenant's intent head (``--tenant`` with ``--intents``)."""
    if (args.tenant is None) != (args.intents is None):
        sys.stderr.write("error: --tenant and --intents go together\n")
        return 2
    if args.tenant is not None and args.out is not None:
        sys.stderr.write("error: --out writes the default heads; a tenant's go to the data dir\n")
        return 2
    from models.classifiers import (
        TrainingReport,
        classifiers_dir,
        train_classifiers,
        train_shipped_heads,
        train_tenant_intents,
    )
    from models.classifiers.training_data import REPO_DATASETS
    from models.embedder import Embedder, EmbedderConfig

    def say(line: str) -> None:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    embedder = Embedder(
        EmbedderConfig(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
            data_dir=Path(settings.data_dir),
        )
    )
    out_dir = classifiers_dir(Path(settings.data_dir))
    try:
        report: TrainingReport
        if args.tenant is not None:
            say(f"training the intent head of tenant {args.tenant} from {args.intents}")
            report = train_tenant_intents(embedder, args.intents, out_dir, args.tenant)
        else:
            source = Path(args.source or settings.training_data_dir)
            datasets = args.datasets or REPO_DATASETS
            say(f"training classifiers from {source} and {datasets}")
            if args.out is not None:
                report = train_shipped_heads(
                    embedder, source, args.out, datasets=datasets, force=args.force, progress=say
                )
            else:
                report = train_classifiers(
                    embedder, source, out_dir, datasets=datasets, force=args.force, progress=say
                )
    finally:
        embedder.shutdown()
    for line in report.lines():
        say(line)
    return 0


def _models_tune_embedder(args: argparse.Namespace, settings: Settings) -> int:
    """Tune, judge, publish if better, reindex: ``retrieval/knowledge/tuning.py``."""
    from dataclasses import replace

    from models.embedder import Embedder
    from models.tuning import TrainingOptions
    from retrieval.knowledge.tuning import tune_tenant_embedder
    from server.lifespan import build_retrieval

    options = TrainingOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_seq_length=args.max_seq_length,
        seed=args.seed,
    )
    retrieval = build_retrieval(settings)
    base = None
    if args.base is not None and args.base != settings.embedding_model:
        base = Embedder(replace(retrieval.embedder.config, model=args.base))
    try:
        report = tune_tenant_embedder(
            retrieval.knowledge,
            args.tenant,
            Path(settings.data_dir),
            base=base,
            holdout=args.holdout,
            seed=args.seed,
            options=options,
            progress_bar=args.progress,
        )
    finally:
        if base is not None:
            base.shutdown()
        retrieval.knowledge.shutdown()
        retrieval.embedder.shutdown()
        retrieval.database.dispose()
    for line in report.lines():
        sys.stdout.write(f"{line}\n")
    return 0

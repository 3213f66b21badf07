"""A tenant's own intents over HTTP: upload examples, train a head, serve it at once.

The upload (CSV or JSONL, as ``concierge models train-classifiers --tenant T --intents
FILE`` reads) is validated before anything runs, by the CLI's validator
(``parse_tenant_examples``), so a bad line is a 400 naming it and nothing is trained.
Training then runs as a job (``kind`` ``tenant_intents``; ``GET /admin/jobs/{id}``):
embedding 5,000 examples and cross-validating the head take about 20 s on a 2-core CPU,
too long to hold a request open. The examples are embedded by the server's own embedder,
in its executor, in batches of ``EMBED_BATCH``, so replies that arrive meanwhile wait for
one batch (well under a second), not for the whole upload; the head is fitted in a worker
thread and published atomically (``write_version``), and the classifiers the reply
pipeline uses are told at once (``reload_tenant``), so the next reply uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import InvalidRequestError, JobCancelledError, NotFoundError
from core.ids import check_tenant
from models.classifiers import (
    Classifiers,
    ExampleFormat,
    LabelledTexts,
    TenantIntents,
    embedder_identity,
    parse_tenant_examples,
    publish_tenant_intents,
)
from models.classifiers.head_store import remove_versions, tenant_root
from models.classifiers.training import EMBED_PURPOSE
from models.embedder import Embedder
from retrieval.job import Job
from retrieval.jobs import ReindexJobs

JOB_KIND = "tenant_intents"
MAX_INTENT_FILE_BYTES = 1 << 20
MAX_INTENT_EXAMPLES = 5_000
EMBED_BATCH = 256
MAX_WAIT_S = 600.0
MEDIA_TYPES: dict[str, ExampleFormat] = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "text/csv": "csv",
}
UPLOAD_NAMES: dict[ExampleFormat, str] = {"jsonl": "upload.jsonl", "csv": "upload.csv"}


class IntentService:
    """Trains, shows and removes tenants' own intent heads for the admin routes."""

    def __init__(
        self, embedder: Embedder, classifiers: Callable[[], Classifiers], jobs: ReindexJobs
    ) -> None:
        self._embedder = embedder
        self._classifiers = classifiers  # the pipeline's: a published head serves at once
        self._jobs = jobs

    async def train(self, tenant: str, body: bytes, media_type: str, wait: bool) -> Job:
        """Validate the examples now (400/413), then train and publish them in a job."""
        check_tenant(tenant)
        file_format = MEDIA_TYPES.get(media_type)
        if file_format is None:
            raise InvalidRequestError(
                "send the examples as JSONL (Content-Type: application/x-ndjson or "
                "application/jsonl) or CSV (text/csv, header text,label)",
                param="content-type",
            )
        examples = await asyncio.to_thread(
            parse_tenant_examples,
            body,
            file_format,
            where="body",
            max_bytes=MAX_INTENT_FILE_BYTES,
            max_examples=MAX_INTENT_EXAMPLES,
        )
        classifiers = await asyncio.to_thread(self._classifiers)  # 503 while none qualifies
        sources = {
            UPLOAD_NAMES[file_format]: {
                "sha256": hashlib.sha256(body).hexdigest(),
                "bytes": len(body),
            }
        }

        async def work(job: Job) -> dict[str, Any]:
            return await self._train(job, classifiers, examples, sources)

        job = self._jobs.submit_work(tenant, JOB_KIND, work)
        job.total = len(examples)  # known now: the job's progress and the audit show it
        await self._jobs.save(job)
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.finished.wait(), MAX_WAIT_S)
        return job

    async def _train(
        self,
        job: Job,
        classifiers: Classifiers,
        examples: LabelledTexts,
        sources: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        started = time.perf_counter()
        batches = []
        for first in range(0, len(examples), EMBED_BATCH):
            if job.cancel_requested.is_set():
                raise JobCancelledError("cancelled while embedding; nothing was published")
            texts = examples.texts[first : first + EMBED_BATCH]
            batches.append(await self._embedder.embed(texts, purpose=EMBED_PURPOSE))
            job.done = first + len(texts)
        identity = classifiers.embedder  # what the classifiers check a tenant head against
        if identity is None:
            config = self._embedder.config
            identity = await asyncio.to_thread(
                embedder_identity, config.model, data_dir=config.data_dir
            )
        published, _ = await asyncio.to_thread(
            publish_tenant_intents,
            classifiers.directory,
            job.tenant,
            examples,
            np.vstack(batches),
            identity=identity,
            embedding_model=self._embedder.model_name,
            sources=sources,
            started=started,
            cancelled=job.cancel_requested.is_set,
        )
        await asyncio.to_thread(classifiers.reload_tenant, job.tenant)
        return published.as_dict()

    async def get(self, tenant: str) -> TenantIntents:
        """The tenant's own head in force; 404 when the general head serves it."""
        check_tenant(tenant)
        classifiers = await asyncio.to_thread(self._classifiers)
        described = await asyncio.to_thread(classifiers.tenant_intents, tenant)
        if described is None:
            raise NotFoundError(
                f"tenant {tenant!r} has no intent head of its own: the general head serves "
                f"it; PUT /admin/tenants/{tenant}/intents teaches it its intents",
                param="tenant",
            )
        return described

    async def delete(self, tenant: str) -> int:
        """Remove every version of the tenant's head (the general head serves again) and
        cancel its unfinished trainings, so none publishes afterwards; returns how many
        were cancelled. 404 when there was nothing to remove or cancel."""
        check_tenant(tenant)
        classifiers = await asyncio.to_thread(self._classifiers)
        pending = await self._jobs.cancel_unfinished(tenant, JOB_KIND)
        removed = await asyncio.to_thread(
            remove_versions, tenant_root(classifiers.directory, tenant)
        )
        await asyncio.to_thread(classifiers.reload_tenant, tenant)
        if not removed and not pending:
            raise NotFoundError(
                f"tenant {tenant!r} has no intent head of its own to remove", param="tenant"
            )
        return len(pending)

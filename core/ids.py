"""The rules every id follows: tenants, documents, customers; and new ids.

Ids become folder names, metric labels, URL path segments and SQL keys, so one module
says what they may look like, and every layer checks them the same way.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from core.errors import InvalidRequestError

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~:@+/-]{0,199}$"
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"

_TENANT = re.compile(TENANT_PATTERN)
_DOCUMENT_ID = re.compile(DOCUMENT_ID_PATTERN)


def check_tenant(tenant: str) -> str:
    """Tenant names become folder names and metric labels: keep them short and plain."""
    if not _TENANT.match(tenant):
        raise InvalidRequestError(
            f"tenant {tenant!r} must match {TENANT_PATTERN} (lowercase letters, digits, - and _)",
            param="tenant",
        )
    return tenant


def check_document_id(doc_id: str) -> str:
    if not _DOCUMENT_ID.match(doc_id) or ".." in doc_id.split("/"):
        raise InvalidRequestError(
            f"document id {doc_id!r} must match {DOCUMENT_ID_PATTERN} without '..' segments",
            param="doc_id",
        )
    return doc_id


def new_id(prefix: str) -> str:
    """A new random id with a readable kind prefix, such as ``tkt_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def stable_id(text: str) -> int:
    """A positive 63-bit integer for ``text``, the same in every process and release: the
    first 63 bits of its BLAKE2b digest. For keys a database or vector index wants as a
    ``bigint`` (BM25 terms, catalog products); two texts of a few million colliding is a
    1 in 10^6 chance, which callers that must stay distinct guard with a unique index."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") >> 1

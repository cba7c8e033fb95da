"""The id a prediction is captured under, and returned under (README, "Request ids").

Every prediction gets a new id issued by the server: 32 hex digits of a random UUID (122 random
bits, so no two servers, workers or restarts hand out the same one). A client that sends its own
id (``x-request-id`` header, or the V2 body's ``id``) keeps it as a prefix:
``<client id>.<32 hex digits>``. A client id repeated by a retry, another client or a mesh is
therefore never a capture id twice, and a label can never join two predictions. Captured rows
are ``<id>:<row>``; the response carries the id in the ``x-request-id`` header and in the body
(V1 ``id``, V2 ``id``), and that is the id to label with.

A client id must be 1 to ``MAX_CLIENT_ID`` visible ASCII characters (it is written into every
captured row); anything else is refused with 400 naming the header or field.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from kfops.serving.validation import FieldError, RequestError

HEADER = "x-request-id"
MAX_CLIENT_ID = 128
SEPARATOR = "."
_CLIENT_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_CLIENT_ID}}}")


def issue(headers: Mapping[str, str] | None, body_id: str | None = None) -> str:
    """A new capture id for one request, keeping the client's id (header first) as a prefix."""
    token = uuid.uuid4().hex
    header = (headers or {}).get(HEADER)
    client, where = (header, HEADER) if header else (body_id, "id")
    if not client:
        return token
    if not isinstance(client, str) or not _CLIENT_ID.fullmatch(client):
        shown = repr(client)[:60] if isinstance(client, str) else type(client).__name__
        raise RequestError(
            [
                FieldError(
                    where,
                    "bad_parameter",
                    f"a request id must be 1 to {MAX_CLIENT_ID} visible ASCII characters "
                    f"(no spaces), got {shown}",
                )
            ],
            status=400,
        )
    return f"{client}{SEPARATOR}{token}"

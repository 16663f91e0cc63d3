"""The API's JSON parser: DRF's, bounded, so no body can cost a traceback or unbounded work.

- A body larger than DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 (JSON), read no further.
- Malformed JSON, JSON nested too deeply for the decoder (RecursionError) or deeper than
  portal.text.MAX_DEPTH, and lone surrogates (no database can store them; no field can say so)
  answer 400. NUL characters are left to the fields, which refuse them with a field message.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.utils.json import strict_constant

from portal.text import unstorable_reason


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "body_too_large"


def body_limit() -> int | None:
    """The most bytes a body may have (DATA_UPLOAD_MAX_MEMORY_SIZE; None: no limit)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit:,} bytes, the most the API accepts.")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})  # text codecs only
        limit = body_limit()
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise too_large(limit)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
        reason = unstorable_reason(data, allow_nul=True)  # NUL: each field answers for itself
        if reason:
            raise ParseError(f"JSON parse error - {reason}.")
        return data

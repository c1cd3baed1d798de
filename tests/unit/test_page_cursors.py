"""A page cursor is read back as this API wrote it, or refused as one it did not return."""

from __future__ import annotations

import base64

import pytest

from modelreg.errors import InvalidInput
from modelreg.graphql.pages import decode_key_cursor


def test_a_cursor_holding_u0000_is_not_one_this_api_returned() -> None:
    # It passed UTF-8 decoding, and PostgreSQL's text refused it inside the query (INTERNAL, retriable).
    cursor = base64.urlsafe_b64encode(b"k:a\x00b").decode()
    with pytest.raises(InvalidInput, match="is not one this API returned"):
        decode_key_cursor(cursor, 1)
    assert decode_key_cursor(base64.urlsafe_b64encode(b"k:ab").decode(), 1) == ["ab"]

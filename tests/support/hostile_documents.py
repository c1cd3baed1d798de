"""GraphQL documents that ask the server for much work in few bytes (the tests' and bench/hostile_documents.py's)."""

from __future__ import annotations


def many_aliases(n: int) -> str:
    """One query of `n` aliased fields: 60,000 of them are about 1.1 MB."""
    return "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(n)) + " }"


def cyclic_fragments() -> str:
    return "{ viewer { ...A } } fragment A on Principal { ...B } fragment B on Principal { ...A }"

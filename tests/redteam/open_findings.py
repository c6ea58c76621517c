"""Red-team cases whose fix has not reached this branch yet, each with the branch expected to fix it.

They run as strict xfails: while the gate still fails them the suite stays green, and the moment a merge fixes one
it XPASSes, which fails the run until its line is removed here. A case is never weakened to pass; it leaves this
table when the gate meets it.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable

import pytest

#: case id -> why it fails today and which work fixes it.
OPEN: dict[str, str] = {
}


def mark(case_id: str) -> Any:
    """The marks of one case: a strict xfail if it is open, none otherwise."""
    if case_id in OPEN:
        return [pytest.mark.xfail(strict=True, reason=f"open finding: {OPEN[case_id]}")]
    return []


def params(cases: Iterable[Any]) -> list[Any]:
    """pytest.param for each Case of a table, open ones marked."""
    return [pytest.param(c, id=c.id, marks=mark(c.id)) for c in cases]


def known(case_id: str):
    """Decorator for a test that is one case (the stale-trust and fuzz functions)."""
    def wrap(func):
        for m in mark(case_id):
            func = m(func)
        return func
    return wrap

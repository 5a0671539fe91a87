"""The one CSV writer for every export, and the rule that keeps spreadsheet formulas out of our cells.

Exports carry other people's text (a patient ID from a scanner, a failed login's user name, a report
sentence). A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (``=HYPERLINK(...)`` phones home when clicked), so such text gets a leading
apostrophe: shown as typed, never run (OWASP "CSV injection"). Numbers stay numbers.
"""

from __future__ import annotations

import csv
from typing import Any, Iterable, Iterator

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would evaluate (also after leading spaces) gets a leading apostrophe."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_START):
        return "'" + value
    return value


class _Echo:
    """A file whose ``write`` returns the line: csv.writer then yields lines for a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Encoded CSV lines, header first, every text cell made spreadsheet-safe (for StreamingHttpResponse)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([spreadsheet_safe(v) for v in row])

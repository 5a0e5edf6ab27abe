"""Spreadsheet-safe CSV cells (OWASP "CSV injection", a.k.a. formula injection).

Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula, and a leading tab or carriage return can hide such a start from naive
checks. Anyone can put text into our exports (a supporter texting ``=HYPERLINK(...) stop``,
a name like ``=cmd|' /C calc'!A0``), so by default every such cell is prefixed with a single
quote, which spreadsheets read as "this is text" and which a reader of the raw CSV can strip.

One exception, decided here once: a cell that is a plain number (``+12025550123``, ``-3``,
``+1.5``) is left alone. A number is not a formula in any spreadsheet, and the phone column
(E.164, always ``+`` and digits) must stay byte-exact so that compliance staff can match it.

:data:`FORMULA_STARTS` and :data:`PLAIN_NUMBER` are also what the PostgreSQL export renders
in SQL (:mod:`sms_service.services.exports`), so the two paths cannot drift.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# ASCII digits only: the same class in Python and in PostgreSQL's regular expressions.
PLAIN_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?$"
_PLAIN_NUMBER = re.compile(PLAIN_NUMBER)
NEUTRALISER = "'"


def spreadsheet_safe(cell: str) -> str:
    """``cell`` as it may appear in a CSV opened by a spreadsheet: a leading formula
    character is neutralised with a single quote; plain numbers and other text unchanged."""
    if cell[:1] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(cell):
        return NEUTRALISER + cell
    return cell

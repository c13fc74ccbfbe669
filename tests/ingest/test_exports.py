"""The CSV cells the product writes: text a spreadsheet would run as a formula is kept as text."""

import pytest

from ingest.exports import csv_cell


@pytest.mark.parametrize("value", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "＝1+1", "-", "+", "-inf",
                                   "-2e3x"])
def test_a_cell_that_would_start_a_formula_is_kept_as_text(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-12.5", "+3", "-.5", "-1e-9", "12", "a=1", " =1", "", None, 7, "'=1"])
def test_numbers_and_other_cells_are_left_as_they_are(value):
    assert csv_cell(value) == value

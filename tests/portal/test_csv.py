import csv
import io

import pytest
from django.http import StreamingHttpResponse

from portal.csv import csv_rows, safe_cell, streaming_csv_response


@pytest.mark.parametrize("dangerous", ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_formula_like_cells_are_prefixed_with_a_quote(dangerous):
    assert safe_cell(dangerous) == "'" + dangerous


@pytest.mark.parametrize(
    ("value", "shown"),
    [("Update Chrome", "Update Chrome"), (None, ""), (42, "42"), ("a=b", "a=b"), ("Zürich – 東京", "Zürich – 東京")],
)
def test_ordinary_cells_are_unchanged(value, shown):
    assert safe_cell(value) == shown


def test_streamed_csv_is_utf8_with_header_and_escaped_rows():
    response = streaming_csv_response(
        "x.csv", ["Name", "Note"], [['Zürich, "HQ"', "=cmd|' /C calc'!A0"], ["東京", "-1"]]
    )
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'
    text = b"".join(response.streaming_content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["Name", "Note"], ['Zürich, "HQ"', "'=cmd|' /C calc'!A0"], ["東京", "'-1"]]


def test_rows_are_produced_lazily():
    produced = []

    def rows():
        for i in range(3):
            produced.append(i)
            yield [i]

    lines = csv_rows(["n"], rows())
    assert next(lines) == "n\r\n"
    assert produced == []
    assert next(lines) == "0\r\n"
    assert produced == [0]

"""What sends an NDJSON file from pyarrow's reader to the exact path (``json_fast._hazard``)."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.files.json_fast import MAX_FAST_PATH_BRACKETS, _hazard

DEEP = b'{"a": ' + b"[" * MAX_FAST_PATH_BRACKETS + b"]" * MAX_FAST_PATH_BRACKETS + b"}"


@pytest.mark.parametrize("text", [
    b"null\n",
    b'{"a": 1}\nnull\n{"a": 2}\n',
    b'{"a": 1}\n  null \r\n',
    b'{"a": 1}\n\tnull',
    b'{"a": 1}{"a": 2}\n',
    b'{"a": 1} \t{"a": 2}\n',
    b'{"a": 1.5e-300}\n',
    b'{"a": 1.5E-100}\n',
    b'{"a": 0.' + b"0" * 300 + b'1}\n',
    b'{"a": 1}\n' + DEEP + b"\n",
    DEEP,
])
def test_text_pyarrow_reads_wrongly_takes_the_exact_path(text):
    assert _hazard(text)


@pytest.mark.parametrize("text", [
    b'{"a": null}\n{"b": "null"}\n',
    b'{"a": "x"} \n{"a": "nullable null"}\n',
    b'{"a": 1.5e-99, "b": "e-mail", "c": "E-1"}\n',
    b'{"a": {"b": {"c": [1, 2]}}}\n' * 1000,
])
def test_ordinary_lines_stay_on_the_fast_path(text):
    assert _hazard(text) is None

"""Object keys from the registry's ``object_key`` pattern.

Promise: each partition of each source has its own object (``postgres/<name>/<date>/...``,
"the registry can change the pattern"); the registry refuses a pattern without ``{date}``
"so that each partition has its own object"; every version an extract saw is in bronze
exactly once.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platform_assets.registry import FileFamily, PostgresSource
from tests.adversarial._common import registry
from tests.adversarial._common2 import ORDERS


def test_two_sources_with_the_same_object_key_pattern_are_refused(pg_conn, pg, store_settings):
    """Found by an attack test: two sources took one pattern without ``{name}``
    (``postgres/shared/{date}/data.parquet``); the registry accepted it and loading B's D2
    replaced A's D2 object while A's tracking row still said ``success``. The registry now
    renders each source's pattern and refuses two sources writing the same objects."""
    shared = "postgres/shared/{date}/data.parquet"
    a = ORDERS.model_copy(update={"name": "a", "table": "a", "object_key": shared})
    b = ORDERS.model_copy(update={"name": "b", "table": "b", "object_key": shared})
    with pytest.raises(ValueError, match="'a' and 'b' would write the same objects"):
        registry(PostgresSource.model_validate(a.model_dump(by_alias=True)),
                 PostgresSource.model_validate(b.model_dump(by_alias=True)))


@pytest.mark.parametrize("pattern", ["postgres/{name}/{{date}}/{name}.parquet", "postgres/{name}/data.parquet",
                                     "postgres/{name}/{day}/x.parquet"])
def test_a_pattern_that_does_not_use_the_date_is_refused(pattern):
    """Found by an attack test: ``{{date}}`` contains the text ``{date}`` and passed, but
    renders as a literal: every partition wrote one object and D3 replaced D2."""
    with pytest.raises(ValidationError, match="object_key"):
        PostgresSource.model_validate({**ORDERS.model_dump(by_alias=True), "object_key": pattern})


@pytest.mark.parametrize("pattern", ["files/{name}/{date}/{{file}}.{version}.parquet",
                                     "files/{name}/{date}/{stem}.parquet", "files/{name}/{date}/{file}.parquet"])
def test_a_file_pattern_that_does_not_use_file_and_version_is_refused(pattern, tmp_path):
    with pytest.raises(ValidationError, match="object_key"):
        FileFamily(name="f", directory=str(tmp_path), glob="*.csv", format="csv", object_key=pattern)

"""pandera schemas referenced by the tests' registries (``tests.quality_rules:<name>``)."""

import pandera.pandas as pa

# Products: a positive price, a known status; other columns are not checked.
products = pa.DataFrameSchema(
    {
        "price": pa.Column(float, pa.Check.ge(0), nullable=False, coerce=True),
        "status": pa.Column(str, pa.Check.isin(["active", "retired"])),
    },
    strict=False,
)

# Small local files of the quality unit tests.
positive_amount = pa.DataFrameSchema(
    {"amount": pa.Column(int, pa.Check.gt(0))},
    strict=False,
)

# Refers to a column the data does not have: pandera itself reports it as missing.
needs_missing_column = pa.DataFrameSchema(
    {"amount": pa.Column(int), "not_there": pa.Column(str)},
    strict=False,
)

# Not a schema: used to show a reference that does not resolve.
NOT_A_SCHEMA = 42

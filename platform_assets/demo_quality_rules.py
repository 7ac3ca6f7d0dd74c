"""pandera schemas referenced by the demo registry (``platform_assets.demo_quality_rules:...``)."""

import pandera.pandas as pa

products = pa.DataFrameSchema(
    {
        "name": pa.Column(str, pa.Check.str_startswith("Product ")),
        "weight_g": pa.Column(float, pa.Check.in_range(1, 100_000), nullable=True, coerce=True),
        "active": pa.Column(bool),
    },
    strict=False,
)

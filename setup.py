from setuptools import find_packages, setup

setup(
    name="data-platform",
    version="0.1.0",
    description="Dagster asset-based batch ingestion of PostgreSQL tables and CSV/JSON files into a MinIO bronze layer",
    packages=find_packages(include=["platform_assets", "platform_assets.*", "platform_resources", "platform_resources.*"]),
    package_data={"platform_assets": ["*.yaml"]},
    python_requires=">=3.11",
    install_requires=[
        # The Dagster family is pinned together: an unpinned dagster-aws resolves to a
        # 2021 release that builds psycopg2 2.8 from source.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-aws==0.29.27",
        "pandas>=2.2",
        "pyarrow>=16",
        "psycopg2-binary>=2.9",
        "pandera>=0.20",
        "pydantic>=2.6",
        "PyYAML>=6",
        "boto3>=1.34",
        # Single-file S3 server that keeps buckets as folders: the embedded object store
        # of the README's first command when MINIO_ENDPOINT is not set.
        "localbucket>=1.2",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "moto[server]>=5",
            # Property-based fuzzing of the readers and the type mapping.
            "hypothesis>=6",
            # An S3 server that checks SigV4 signatures (moto does not), for credential faults.
            "nanio>=0.1.7",
        ],
        # Production instance storage on PostgreSQL, pinned with the rest of the family.
        # SQLAlchemy 2.1 makes postgresql:// mean psycopg 3, which dagster-postgres
        # does not install: keep the 2.0 line, where it means psycopg2.
        "postgres-instance": ["dagster-postgres==0.29.27", "sqlalchemy>=2.0,<2.1"],
        # Embedded PostgreSQL for `make demo` on a machine with no PostgreSQL at all.
        "embedded": ["pgserver>=0.1.4"],
        # Baselines and the chart of the benchmark suite (dlt runs in its own venv:
        # its filesystem extra pins a botocore older than boto3 needs).
        "bench": [
            "duckdb==1.5.5",
            "duckdb-extension-postgres==1.5.5",
            "matplotlib>=3.8",
        ],
    },
)

"""Dagster wiring only: the assets, checks, schedules and sensors built from the registry.

``postgres`` and ``files`` build one asset per source (with its checks and, for file
families, its sensor); ``automation`` builds each database source's daily schedule
(catch-up included); ``freshness`` the partition-aware freshness checks and their
sensor; ``checks`` turns the registry's quality rules into asset checks; ``common``
holds what the pipelines share (services from resources, retries, metadata). The
engine below (``platform_assets.ingestion``) never imports this; the rules of
``automation`` and ``freshness`` are in ``platform_assets.automation`` (pure).
"""

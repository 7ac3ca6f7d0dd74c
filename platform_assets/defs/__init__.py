"""Dagster wiring only: the assets, checks and sensors built from the registry.

``postgres`` and ``files`` build one asset per source (with its checks and, for file
families, its sensor); ``checks`` turns the registry's quality rules into asset
checks; ``common`` holds what both share (services from resources, retries,
metadata). The engine below (``platform_assets.ingestion``) never imports this.
"""

"""Clients for the platform's services: PostgreSQL and the S3-compatible object store."""

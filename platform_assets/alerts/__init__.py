"""Alerts, pure: what a failure says (``messages``) and the bookkeeping of their delivery
(``outbox``: the sensor's cursor, retries, drops). No Dagster, no network: the sensor
(``platform_assets/defs/alerts.py``) reads the instance, and the webhook resource posts.
"""

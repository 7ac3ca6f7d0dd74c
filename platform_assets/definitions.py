"""The code location: every registry source as an asset, its schedule or sensor, the freshness
checks, the resources, the main job, the alerts sensor.

Loading this module reads the registry and environment variables only; no
database or object store is contacted until a run starts.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.defs.alerts import build_alerts_sensor
from platform_assets.defs.automation import build_automation_schedule
from platform_assets.defs.files import asset_key as file_asset_key
from platform_assets.defs.files import build_file_family
from platform_assets.defs.freshness import Target, build_freshness
from platform_assets.defs.postgres import GROUP, build_postgres_asset
from platform_assets.defs.postgres import asset_key as postgres_asset_key
from platform_assets.registry import Registry, load_registry
from platform_resources.alert_webhook import AlertWebhookResource
from platform_resources.config import ALERT_WEBHOOK_VARIABLE, is_set
from platform_resources.object_store_resources import (
    StorageLayersResource,
    minio_s3_resource,
)
from platform_resources.postgres import PostgresResource

MAIN_JOB = "ingest_postgres_sources"


def daily_partitions(registry: Registry) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition can be materialized during the day (and again later).
    return dg.DailyPartitionsDefinition(
        start_date=registry.start_date.isoformat(), timezone=registry.timezone, end_offset=1
    )


def build_definitions(registry: Registry) -> dg.Definitions:
    partitions = daily_partitions(registry)
    assets, schedules, sensors, checks = [], [], [], []
    for source in registry.postgres:
        asset = build_postgres_asset(source=source, registry=registry, partitions_def=partitions)
        assets.append(asset)
        schedules.append(build_automation_schedule(source=source, registry=registry, asset=asset))
    for family in registry.files:
        asset, sensor = build_file_family(family=family, registry=registry, partitions_def=partitions)
        assets.append(asset)
        sensors.append(sensor)
    targets = [Target(postgres_asset_key(s), s) for s in registry.postgres if s.freshness]
    targets += [Target(file_asset_key(f), f) for f in registry.files if f.freshness]
    built = build_freshness(targets=targets, registry=registry)
    if built:
        checks.append(built[0])
        sensors.append(built[1])
    sensors.append(
        build_alerts_sensor(
            sensor_names=[s.name for s in [*sensors, *schedules]],
            op_assets={a.op.name: a.key.to_user_string() for a in assets},
            warn_assets=[a.key.to_user_string() for a in assets if registry.warn_check_alerts(a.key.path[-1])],
            # On by default where a webhook is configured; elsewhere it can be started by hand
            # (it then skips, saying the variable is unset).
            default_status=dg.DefaultSensorStatus.RUNNING
            if is_set(ALERT_WEBHOOK_VARIABLE)
            else dg.DefaultSensorStatus.STOPPED,
        )
    )
    main_job = dg.define_asset_job(
        MAIN_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        description="Load every PostgreSQL source of the registry for one day.",
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[main_job],
        schedules=schedules,
        sensors=sensors,
        resources={
            "source_db": PostgresResource(),
            "platform_db": PostgresResource(env_prefix="PLATFORM_"),
            "s3": minio_s3_resource(),
            "storage_layers": StorageLayersResource.from_env(),
            "alert_webhook": AlertWebhookResource.from_env(),
        },
    )


defs = build_definitions(load_registry())

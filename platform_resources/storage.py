"""The guide's ``utils.storage``: storage layers and listing what a layer holds.

    from platform_resources.storage import StorageLayer, list_layer_objects
    for obj in list_layer_objects(StorageLayer.BRONZE, prefix="postgres/orders/2024-01-01/"):
        print(f"{obj['Key']} ({obj['Size']} bytes)")
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from platform_resources.config import ObjectStoreSettings
from platform_resources.object_store import ObjectStore


class StorageLayer(str, Enum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


def layer_bucket(layer: StorageLayer, settings: ObjectStoreSettings | None = None) -> str:
    settings = settings or ObjectStoreSettings.from_env()
    return settings.buckets[StorageLayer(layer).value]


def list_layer_objects(
    layer: StorageLayer, prefix: str = "", settings: ObjectStoreSettings | None = None
) -> list[dict[str, Any]]:
    """Objects of ``layer`` under ``prefix``: dicts with ``Key``, ``Size``, ``LastModified``, ``ETag``."""
    settings = settings or ObjectStoreSettings.from_env()
    store = ObjectStore(settings.client(), settings.endpoint_url)
    return list(store.list_objects(layer_bucket(layer, settings), prefix))

"""What a partition holds, as pure rules (no database, no object store, no Dagster).

``postgres``: the plan of a database source's partition (its rows' window, replay,
merge or reset). ``files``: a file family's partitions (a file's date) and object keys.
"""

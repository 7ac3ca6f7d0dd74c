"""The PostgreSQL pipeline: a partition's load under the source's lock.

``partition_load`` plans and runs a partition (``load`` is one tracked run:
snapshot, extract, upload, commit); ``extract`` streams rows out of a snapshot
(``session``, ``snapshot``, ``copy_streams``, ``copy_reader``, ``copy_lines``);
``query_builder``/``sql_text`` build the SQL; ``catalog``/``type_mapping`` read the
table's columns and map their types; ``load_planning``/``watermark_values`` decide
the watermark window; ``late_rows`` and ``null_watermarks`` look for rows a
partition may have missed; ``source_state`` is what the tracking tables say of a source.
"""

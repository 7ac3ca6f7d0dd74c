"""Where every load ends: Arrow batches to a Parquet object in the bronze bucket.

``parquet`` writes the file (``hashing_io`` computes its MD5 as it goes, ``memory``
keeps the process small); ``staged`` is the load skeleton both pipelines share
(staging directory, streamed upload, ``LoadResult``); ``object_keys``,
``object_merge``, ``schema_metadata``, ``schema_evolution`` and ``arrow_values`` are
what an object is named, merged from, and says about its columns.
"""

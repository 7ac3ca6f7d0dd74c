"""The file pipeline: CSV and JSON files to Parquet, and file families.

``load`` is one tracked load of one file (``FileLoadRequest``); ``convert`` with
``csv_reader``/``json_reader``/``text_types`` reads a file exactly; ``family_scan``,
``family_load`` and ``family_watch`` find a family's files, load a partition's
versions once each, and plan a sensor tick.
"""

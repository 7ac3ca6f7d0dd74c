"""The tracking tables in ``data_platform``: what was loaded, where, and how far.

Every function takes an open psycopg2 connection to the platform database in
autocommit mode. ``migrations`` creates the tables (an explicit bootstrap step);
``locks`` serialises the runs of a source; ``run_records`` writes the run rows (the
one multi-statement write, ``commit_success``, marks a run ``success`` and moves its
watermark in one transaction); ``watermark_store`` and ``schema_log`` read what runs
recorded; ``file_ledger`` is the file families' ledger; ``run_scope`` is the life of
one run (lock, ``running``, then ``success`` or ``failed``).
"""

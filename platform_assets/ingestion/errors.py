"""Exception hierarchy of the ingestion engine (the names the user guide uses)."""


class IngestionError(Exception):
    """A load failed: reading the source, converting it or storing it."""


class WatermarkError(IngestionError):
    """The high-water mark of an incremental source could not be read or moved."""


class SchemaDetectionError(IngestionError):
    """The structure of a source could not be read or is not usable."""


class TransientError(IngestionError):
    """A failure worth retrying as is: a service unreachable or a connection lost."""


class SourceBusyError(TransientError):
    """Another run of the same source holds its lock."""


class SchemaContractError(SchemaDetectionError):
    """A source's schema changed in a way its schema policy forbids."""


class FileChangedError(IngestionError):
    """A file changed while it was read: nothing was stored; it is loaded once at rest."""

"""Ingest of a landing folder (CONTRACT §1): read, validate, quarantine, load in one transaction."""
from arrears.ingest.load import IngestError, IngestResult, ingest_delivery

__all__ = ["IngestError", "IngestResult", "ingest_delivery"]

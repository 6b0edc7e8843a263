"""Data: the raw-data contract, hourly ingest, PII policy and tokenization, data versioning."""

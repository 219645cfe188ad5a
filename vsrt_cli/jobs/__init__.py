"""Many clips and chunks: batches, chunked runs, their executors (local and Ray) and the
provenance record every output gets (docs/ARCHITECTURE.md). Imports engine/ and below."""

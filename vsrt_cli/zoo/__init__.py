"""The model zoo: the bundled manifest and its registry, weights files and downloads
(docs/ARCHITECTURE.md). Imports model/ and errors only."""

"""What looks at outputs: metrics, evaluation against a reference, side-by-side comparisons,
previews, labels and plots (docs/ARCHITECTURE.md). Imports engine/ and below."""

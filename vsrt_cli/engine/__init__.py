"""One clip through the model: the window schedule, tiles, device memory and precision, the
device colour maths, and the streaming pipeline from reader to writer (docs/ARCHITECTURE.md).
Imports io/, model/ and errors only; never prints."""

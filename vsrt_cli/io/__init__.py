"""Reading and writing frames: containers (PyAV) and image folders. Never imports torch.nn."""

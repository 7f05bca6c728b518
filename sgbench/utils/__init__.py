"""Base utilities every layer may use: the user-facing error, atomic files and hashes, progress bars,
shipped resources, and torch.distributed setup. They import nothing else of sgbench."""

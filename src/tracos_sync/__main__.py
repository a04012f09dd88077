"""``python -m tracos_sync``."""

from tracos_sync.cli import main

main()

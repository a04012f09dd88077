"""The challenge's entry point: ``python src/main.py`` runs one full sync (or any subcommand)."""

import sys

from tracos_sync.cli import main

if __name__ == "__main__":
    main(sys.argv[1:] or ["run"])

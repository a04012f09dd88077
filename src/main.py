"""The challenge's entry point: ``python src/main.py`` runs one full sync; it takes the same
options as ``tracos-sync run`` (``python src/main.py --embedded``), or any subcommand."""

import sys

try:
    from tracos_sync.cli import main, with_default_command
except ModuleNotFoundError as exc:  # a Python without the project's dependencies
    sys.exit(
        f"tracos-sync: {exc.name!r} is not installed for {sys.executable}. Run `make install`,"
        " then `.venv/bin/python src/main.py` (or simply `make run`)."
    )

if __name__ == "__main__":
    main(with_default_command(sys.argv[1:], "run"))

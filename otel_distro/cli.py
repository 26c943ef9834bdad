"""`otel-distro` console command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from otel_distro.settings import load_settings, markdown_table, setting_fields


def _settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    settings = load_settings()
    for f in setting_fields():
        print(f"{f.metadata['env']}={getattr(settings, f.name)!r}  ({settings.sources[f.name]})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-distro", description="otel-distro tools")
    commands = parser.add_subparsers(dest="command", required=True)
    settings = commands.add_parser("settings", help="show the effective settings (or the README table)")
    settings.add_argument("--markdown", action="store_true", help="print the README table of variables")
    settings.set_defaults(run=_settings)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

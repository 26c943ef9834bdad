"""`otel-distro` console command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from otel_distro.settings import load_settings, markdown_table


def _settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    from otel_distro.doctor import settings_rows  # here: `settings --markdown` needs none of the doctor

    settings = load_settings()
    for row in settings_rows(settings):
        print(f"{row['env']}={row['value']!r}  ({row['source']})")
    for problem in settings.problems:
        print(f"otel-distro: {problem.message}", file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from otel_distro.doctor import diagnose

    report = diagnose(app=args.app, timeout=args.timeout, network=not args.offline)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.render())
    return report.exit_code(strict=args.strict)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-distro", description="otel-distro tools")
    commands = parser.add_subparsers(dest="command", required=True)
    settings = commands.add_parser("settings", help="show the effective settings (or the README table)")
    settings.add_argument("--markdown", action="store_true", help="print the README table of variables")
    settings.set_defaults(run=_settings)

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration, the collector, instrumentations and (optionally) the app",
        description="Exit status 0 when no problem is found, 1 otherwise (one line per problem).",
    )
    doctor.add_argument("--app", metavar="MODULE:ATTR", help="import the app (e.g. app:app) and check it too")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--timeout", type=float, default=3.0, help="seconds per collector probe (default 3)")
    doctor.add_argument("--offline", action="store_true", help="do not contact the collector")
    doctor.add_argument("--strict", action="store_true", help="warnings count as problems too")
    doctor.set_defaults(run=_doctor)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

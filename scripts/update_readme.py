#!/usr/bin/env python3
"""Regenerate the README's table of environment variables from otel_distro.settings."""

from __future__ import annotations

import re
from pathlib import Path

from otel_distro.settings import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- settings-table:start -->\n).*?(\n<!-- settings-table:end -->)", re.S)


def main() -> None:
    text = README.read_text()
    updated = BLOCK.sub(lambda m: m.group(1) + markdown_table() + m.group(2), text)
    README.write_text(updated)


if __name__ == "__main__":
    main()

"""What every check returns (findings) and the report they make."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

__all__ = ["OK", "PROBLEM", "WARNING", "Finding", "Report", "entry_points", "show"]

PROBLEM, WARNING, OK = "problem", "warning", "ok"


@dataclass(frozen=True)
class Finding:
    check: str  # config, collector, instrumentations, distro, app
    level: str  # problem, warning, ok
    message: str
    fix: str | None = None

    def line(self) -> str:
        return f"{self.message}; fix: {self.fix}" if self.fix else self.message


@dataclass
class Report:
    settings: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == PROBLEM]

    def exit_code(self, strict: bool = False) -> int:
        failing = self.problems or (strict and any(f.level == WARNING for f in self.findings))
        return 1 if failing else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "settings": self.settings,
            "findings": [asdict(f) for f in self.findings],
            "problems": [f.line() for f in self.problems],
        }

    def render(self) -> str:
        width = max((len(s["env"]) for s in self.settings), default=0)
        lines = ["Configuration (value, source):"]
        for s in self.settings:
            lines.append(f"  {s['env']:<{width}}  {show(s['value'])}  ({s['source']})")
        for check in ("config", "distro", "collector", "instrumentations", "app"):
            found = [f for f in self.findings if f.check == check]
            if found:
                lines.append(f"\n{check.capitalize()}:")
                lines.extend(f"  {f.level.upper():<7}  {f.line()}" for f in found)
        problems = self.problems
        lines.append("")
        if problems:
            lines.append(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:")
            lines.extend(f"  {f.line()}" for f in problems)
        else:
            lines.append("No problems found.")
        return "\n".join(lines)


def show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(empty)"
    return str(value)


def entry_points(group: str) -> list[metadata.EntryPoint]:
    """The installed entry points of a group (distros, configurators, instrumentors)."""
    return list(metadata.entry_points(group=group))

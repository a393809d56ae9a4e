"""What a board is: architecture, CPU part, device-tree model, Jetson release, Python, deployed
version; and whether that matches a bundle's target (`board_match` in targets/*.toml)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgefit.runtime.deploy.ssh import Connection
from edgefit.targets import Target

_PROBE = (
    'echo "@@arch"; uname -m; '
    'echo "@@cpuinfo"; cat /proc/cpuinfo 2>/dev/null; '
    # Redirections are done by the login shell, so files are read by the board's own `cat`.
    "echo \"@@model\"; cat /proc/device-tree/model 2>/dev/null | tr -d '\\000'; echo; "
    'echo "@@tegra"; cat /etc/nv_tegra_release 2>/dev/null; '
    'echo "@@python"; python3 -V 2>&1; '
    'echo "@@current"; readlink "$HOME/edgefit/current" 2>/dev/null; '
    'echo "@@previous"; readlink "$HOME/edgefit/previous" 2>/dev/null; '
    'echo "@@end"'
)


@dataclass(frozen=True)
class BoardFacts:
    arch: str
    cpu_parts: tuple[str, ...]
    model: str
    tegra_release: str
    python: str  # "3.11", or "" when the board has no python3
    current: str  # what ~/edgefit/current points to ("" when nothing is deployed)
    previous: str
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        parts = f"CPU part {','.join(sorted(set(self.cpu_parts)))}" if self.cpu_parts else "CPU part unknown"
        model = f", {self.model!r}" if self.model else ""
        tegra = f", {self.tegra_release.split(',')[0].lstrip('# ')}" if self.tegra_release else ""
        return f"{self.arch}, {parts}{model}{tegra}"


def probe(conn: Connection) -> BoardFacts:
    out = conn.run(_PROBE, timeout_s=120).stdout.decode(errors="replace")
    sections: dict[str, str] = {}
    for chunk in out.split("@@")[1:]:
        key, _, body = chunk.partition("\n")
        sections[key.strip()] = body.strip()
    py = re.search(r"Python (\d+)\.(\d+)", sections.get("python", ""))
    return BoardFacts(
        arch=sections.get("arch", "").strip(),
        cpu_parts=tuple(re.findall(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", sections.get("cpuinfo", ""), re.M)),
        model=sections.get("model", "").strip(),
        tegra_release=sections.get("tegra", "").strip(),
        python=f"{py[1]}.{py[2]}" if py else "",
        current=sections.get("current", "").strip(),
        previous=sections.get("previous", "").strip(),
        raw=sections,
    )


def mismatches(target: Target, facts: BoardFacts) -> list[str]:
    """Why this board is not a `target` (empty when it is). The CPU is identified by its part
    number or, failing that, the device-tree model; Jetsons must also carry the L4T release."""
    match = target.board_match
    problems = []
    if match.get("arch") and facts.arch != match["arch"]:
        problems.append(f"architecture {facts.arch or 'unknown'} (bundle needs {match['arch']})")
        return problems
    part, model_hint = match.get("cpu_part"), match.get("model_contains")
    if part or model_hint:
        part_ok = bool(part) and part.lower() in (p.lower() for p in facts.cpu_parts)
        model_ok = bool(model_hint) and model_hint in facts.model
        if not (part_ok or model_ok):
            problems.append(
                f"CPU/model ({facts.describe()}) is not a {target.name} (CPU part {part}, model {model_hint!r})"
            )
    release = match.get("tegra_release")
    if release and not re.match(rf"#\s*{re.escape(release)}\b", facts.tegra_release):
        problems.append(f"L4T release {facts.tegra_release[:24] or 'missing'} (bundle needs {release})")
    return problems

"""The README's troubleshooting table quotes messages the code gives: each quoted text is found in
the package or the workflow (or is Snakemake's or the OS's own, met by tests/test_bad_inputs.py)."""

import re

from conftest import REPO

EXTERNAL = {"Directory cannot be locked": "Snakemake's lock", "No space left on device": "the OS (ENOSPC)"}


def quoted_messages() -> list[str]:
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [m for row in rows for m in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def code_text() -> str:
    files = [
        *(REPO / "src").rglob("*.py"),
        *(REPO / "workflow").rglob("*.smk"),
        *(REPO / "workflow").rglob("*.py"),
    ]
    return "\n".join(f.read_text() for f in files)


def test_every_quoted_message_is_one_the_code_gives():
    messages = quoted_messages()
    assert len(messages) >= 20
    code = code_text()
    missing = [m for m in messages if m not in EXTERNAL and m not in code]
    assert not missing, (
        f"the README's troubleshooting table quotes messages the code no longer gives: {missing}"
    )

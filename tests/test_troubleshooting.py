"""The README's troubleshooting table and the messages the code raises, checked both ways: each
quoted text is one the package or the workflow gives (or Snakemake's or the OS's own, met by
tests/test_bad_inputs.py), and each message a `raise` in them gives is quoted there, unless it is
listed below as one a config or a dataset cannot reach."""

import ast
import re

from conftest import REPO

EXTERNAL = {"Directory cannot be locked": "Snakemake's lock", "No space left on device": "the OS (ENOSPC)"}

# (file, a text of the message): raises no config, checkpoint or dataset can reach through the
# workflow (Python API argument checks, invariants of the engine and the adapters' layouts), and
# those that only put a place before a message quoted in the table (`f"{where}: {err}"`)
UNREACHED = {
    ("src/vlmflow/layout.py", "only the open-ended flow's inputs"): "layout invariant (the flow builds them)",
    ("src/vlmflow/tagging.py", "must be 'lexicon' or 'spacy'"): "API argument (the schema's enum)",
    ("src/vlmflow/__init__.py", "has no attribute"): "Python attribute lookup",
    ("src/vlmflow/jobs.py", "the job has no file named"): "a rule script's own typo",
    ("src/vlmflow/probes.py", "bin size must be >= 1"): "API argument",
    ("src/vlmflow/knockout/attention.py", "memory budget must be"): "API argument (schema minimum 1)",
    ("src/vlmflow/knockout/spec.py", "window centre"): "API argument (sweeps build valid centres)",
    ("src/vlmflow/knockout/spec.py", "explicit window"): "API argument",
    ("src/vlmflow/knockout/masks.py", "cannot hold this knockout"): "engine invariant",
    ("src/vlmflow/knockout/masks.py", "cannot hold these pairs"): "engine invariant",
    ("src/vlmflow/knockout/attention.py", "a blocked matrix holds rows"): "engine invariant",
    ("src/vlmflow/knockout/engine.py", "a layerwise mask blocks row"): "engine invariant",
    ("src/vlmflow/knockout/attention.py", "padded batches are not supported"): "engine invariant",
    ("src/vlmflow/knockout/attention.py", "attention probabilities are kept"): "engine invariant",
    ("src/vlmflow/layout.py", "do not hold"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "overlap or are out of order"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "must hold frames"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "must follow the last frame"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "a video tail follows one video placeholder"): "adapter layout invariant",
    ("src/vlmflow/testing/checkpoints.py", "keys must be 'hub' or 'saved'"): "fixture writer argument",
    ("src/vlmflow/layout.py", "out of range 0.."): "checked earlier as `is outside the model's video grid`",
    ("src/vlmflow/layout.py", "bad group name"): "checked earlier as `unknown token group`",
    ("src/vlmflow/layout.py", "unknown group"): "checked earlier as `unknown token group`",
    ("src/vlmflow/layout.py", "is not covered by any token"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "expected 1 or one per frame"): "adapter layout invariant",
    ("src/vlmflow/layout.py", "the prompt layout is not supported"): "adapter layout invariant",
    ("src/vlmflow/models/weights.py", "header length out of the file"): "caught: becomes `is corrupt`",
    ("src/vlmflow/models/weights.py", "weight "): "a rename table without a row (a bug, with the key)",
    ("src/vlmflow/models/loading.py", "not in the cache"): "caught: becomes `cannot load`",
    ("src/vlmflow/jobs.py", "sample "): "a place before `hold NaN or Inf`",
    ("src/vlmflow/settings.py", "config experiments."): "a place before the experiment's message",
    ("src/vlmflow/settings.py", ", model "): "a place before the experiment's message",
    ("src/vlmflow/stages/knockout.py", "model "): "a place before the experiment's message",
    ("src/vlmflow/knockout/spec.py", "experiment "): "a place before the group's message",
}


def quoted_messages() -> list[str]:
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [m for row in rows for m in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def code_files() -> list:
    return sorted([*(REPO / "src").rglob("*.py"), *(REPO / "workflow").rglob("*.py")])


def texts(node) -> list[str]:
    """The literal parts of a string expression (implicit concatenation is one constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant)]
    if isinstance(node, ast.BinOp):
        return texts(node.left) + texts(node.right)
    return []


def raised_messages() -> list[tuple[str, int, list[str]]]:
    """(file, line, literal parts) of every `raise X(message)` in the package and the workflow."""
    out = []
    for f in code_files():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                parts = texts(node.exc.args[0])
                if parts:
                    out.append((str(f.relative_to(REPO)), node.lineno, parts))
    return out


def code_strings() -> str:
    """Every string literal of the code, the literal parts of f-strings included."""
    found = []
    for f in code_files():
        for node in ast.walk(ast.parse(f.read_text())):
            found += texts(node)
    found += [f.read_text() for f in (REPO / "workflow").rglob("*.smk")]
    return "\n".join(found)


def test_every_quoted_message_is_one_the_code_gives():
    messages = quoted_messages()
    assert len(messages) >= 20
    code = code_strings()
    missing = [m for m in messages if m not in EXTERNAL and m not in code]
    assert not missing, (
        f"the README's troubleshooting table quotes messages the code no longer gives: {missing}"
    )


def test_every_message_the_code_raises_is_in_the_table():
    messages = [m for m in quoted_messages() if m not in EXTERNAL]
    unlisted, used = [], set()
    for path, line, parts in raised_messages():
        if any(m in p for p in parts for m in messages):
            continue
        hit = [key for key in UNREACHED if key[0] == path and any(key[1] in p for p in parts)]
        used.update(hit)
        if not hit:
            unlisted.append(f"{path}:{line}: {' ... '.join(p.strip() for p in parts)}")
    assert not unlisted, (
        "messages raised in the code but missing from the README's troubleshooting table "
        "(add a row, or list the raise in UNREACHED with why no user meets it):\n" + "\n".join(unlisted)
    )
    assert not set(UNREACHED) - used, f"UNREACHED lists raises that are gone: {set(UNREACHED) - used}"

"""The file-manager job: read the script and the last test output from TitanStore, ask the decider for a
patch, rewrite the script in TitanStore. Exits 1 when no patch is known (the loop then gives up).

The decision comes from an LLM when TITAN_LLM_COMMAND or TITAN_LLM_URL is set; otherwise from this table
of error -> patch rules, each applied to the line the traceback points at:

    NameError: name 'X' is not defined         X -> the closest name defined in the file
    ZeroDivisionError on `return A / B`        -> `return A / B if B else 0.0`
    AttributeError: 'T' object has no attribute 'X'   .X( -> .Y( with Y the closest attribute of T
"""

import builtins
import difflib
import re
import sys

from titan_sdk import TitanClient
from titan_sdk.agents import PATCH, Remedy, Rule, configured_decider

SCRIPT = "stats.py"
INSTRUCTIONS = (f"You fix Python code. The tests of {SCRIPT} failed with the output below. Answer with a "
                f"PATCH whose 'patch' is [exact old text of {SCRIPT}, new text] fixing one failure.")


def failing_line(logs: str, before: int, source: str):
    """The line of SCRIPT the traceback ending at `before` points at: (text, or None)."""
    frames = re.findall(rf'File "[^"]*{re.escape(SCRIPT)}", line (\d+)', logs[:before])
    lines = source.splitlines()
    return lines[int(frames[-1]) - 1] if frames and int(frames[-1]) <= len(lines) else None


def closest(word: str, candidates) -> str:
    found = difflib.get_close_matches(word, sorted(set(candidates) - {word}), n=1, cutoff=0.6)
    return found[0] if found else None


def fix_name(match, context):
    line = failing_line(match.string, match.start(), context[SCRIPT])
    name = closest(match[1], re.findall(r"\b[A-Za-z_]\w*\b", context[SCRIPT]))
    if line is None or name is None:
        return None
    return Remedy(PATCH, f"{match[1]!r} is not defined: meant {name!r}",
                  patch=(line, re.sub(rf"\b{match[1]}\b", name, line)))


def fix_division(match, context):
    line = failing_line(match.string, match.start(), context[SCRIPT])
    parts = re.fullmatch(r"(\s*)return (.+) / (.+)", line or "")
    if parts is None:
        return None
    indent, numerator, denominator = parts.groups()
    return Remedy(PATCH, f"division by zero when {denominator} is 0: return 0.0 then",
                  patch=(line, f"{indent}return {numerator} / {denominator} if {denominator} else 0.0"))


def fix_attribute(match, context):
    line = failing_line(match.string, match.start(), context[SCRIPT])
    kind = getattr(builtins, match[1], None)
    name = closest(match[2], dir(kind)) if isinstance(kind, type) else None
    if line is None or name is None or f".{match[2]}(" not in line:
        return None
    return Remedy(PATCH, f"{match[1]} has no {match[2]!r}: meant {name!r}",
                  patch=(line, line.replace(f".{match[2]}(", f".{name}(")))


RULES = [
    Rule(r"NameError: name '(\w+)' is not defined", fix_name),
    Rule(r"ZeroDivisionError", fix_division),
    Rule(r"AttributeError: '(\w+)' object has no attribute '(\w+)'", fix_attribute),
]

client = TitanClient()
source = client.store_get(f"code_healer/file/{SCRIPT}")
logs = client.store_get("code_healer/test_output")
remedy = configured_decider(INSTRUCTIONS, RULES).decide(logs, {SCRIPT: source})
print(f"decided by {remedy.source}: {remedy.action}: {remedy.reason}")
if remedy.action != PATCH or not remedy.patch or remedy.patch[0] not in source:
    print("no patch that applies to the file; giving up")
    sys.exit(1)
old, new = remedy.patch
print(f"- {old.strip()}\n+ {new.strip()}")
client.store_put(f"code_healer/file/{SCRIPT}", source.replace(old, new, 1))
client.store_sadd("code_healer/patches", f"round {sys.argv[1]}: {remedy.reason}")

"""One documentation job: read one source file from TitanStore, write its Markdown documentation back.

From an LLM when TITAN_LLM_COMMAND or TITAN_LLM_URL is set (see titan_sdk/agents.py); otherwise from the
file's own structure, read with `ast`: module docstring, functions and classes with signatures and
docstrings.

    document_file.py NAME      (reads docs/src/NAME, writes docs/md/NAME)
"""

import ast
import sys

from titan_sdk import TitanClient
from titan_sdk.agents import LLMError, configured_llm


def signature(node, owner: str = "") -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{prefix} {owner}{node.name}({ast.unparse(node.args)}){returns}"


def describe(node, heading: str) -> list:
    doc = ast.get_docstring(node)
    return [heading, "", doc or "_No docstring._", ""]


def from_structure(name: str, source: str) -> str:
    tree = ast.parse(source, filename=name)
    lines = [f"## `{name}`", "", ast.get_docstring(tree) or "_No module docstring._", ""]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines += describe(node, f"### `{signature(node)}`")
        elif isinstance(node, ast.ClassDef):
            bases = f"({', '.join(ast.unparse(b) for b in node.bases)})" if node.bases else ""
            lines += describe(node, f"### `class {node.name}{bases}`")
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines += describe(member, f"#### `{signature(member, owner=node.name + '.')}`")
    return "\n".join(lines)


def from_llm(llm, name: str, source: str) -> str:
    prompt = (f"Write concise Markdown reference documentation for the Python file {name}: its purpose, "
              f"then every function and class with its signature. Start with '## `{name}`'.\n\n{source}")
    return llm.ask(prompt).strip() + "\n"


name = sys.argv[1]
client = TitanClient()
source = client.store_get(f"docs/src/{name}")
llm = configured_llm()
try:
    markdown, how = (from_llm(llm, name, source), "an LLM") if llm else (from_structure(name, source), "ast")
except LLMError as exc:
    markdown, how = from_structure(name, source), f"ast (the LLM failed: {exc})"
client.store_put(f"docs/md/{name}", markdown)
print(f"documented {name} from {how}: {markdown.count(chr(10)) + 1} lines")

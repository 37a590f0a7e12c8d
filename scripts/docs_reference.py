"""Write the reference pages of the docs from the code: docs/reference/configuration.md
from default_config.py, and docs/reference/api.md from the OpenAPI document.

    python scripts/docs_reference.py           # rewrite both pages
    python scripts/docs_reference.py --check   # exit 1 if either is out of date
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "reference"


def configuration() -> str:
    source = (ROOT / "default_config.py").read_text()
    lines = source.splitlines()
    module = ast.parse(source)
    (assign,) = [n for n in module.body if isinstance(n, ast.Assign)]
    table: ast.Dict = assign.value
    out = [
        "# Configuration",
        "",
        "Every option, its default and what it does, as `default_config.py` (at the top of the "
        "repository) lists them.",
        "Put the options you change in a Python file that defines `config` and name it with "
        "`--config FILE` or `RMF_TASK_SCHEDULER_CONFIG`; any string, number or boolean option can "
        "also be set as `RMF_TASK_SCHEDULER_<OPTION>`.",
        "",
    ]
    previous_end = table.lineno
    group: list[tuple[str, str]] = []
    comment: list[str] = []

    def flush() -> None:
        if not group:
            return
        out.append("## " + ", ".join(f"`{key}`" for key, _ in group))
        out.append("")
        for key, value in group:
            if "\n" in value:
                out.extend([f"Default of `{key}`:", "", "```python", value, "```", ""])
            else:
                out.extend([f"Default: `{value}`" + (f" (`{key}`)" if len(group) > 1 else ""), ""])
        if any(line.startswith(" ") for line in comment):  # laid out by hand: keep it so
            out.extend(["```text", *comment, "```", ""])
        elif comment:
            out.extend([" ".join(comment), ""])
        group.clear()

    for key_node, value_node in zip(table.keys, table.values, strict=True):
        between = lines[previous_end : key_node.lineno - 1]
        notes = [line.strip()[2:] if line.strip().startswith("# ") else "" for line in between]
        notes = [n for n in notes if n or notes]
        if any(line.strip().startswith("#") for line in between):
            flush()
            comment = [n.rstrip() for n in notes]
        value = ast.get_source_segment(source, value_node, padded=True).strip()
        group.append((ast.literal_eval(key_node), _dedent(value)))
        previous_end = value_node.end_lineno
    flush()
    return "\n".join(out).rstrip() + "\n"


def _dedent(value: str) -> str:
    first, *rest = value.split("\n")
    indent = min((len(r) - len(r.lstrip()) for r in rest if r.strip()), default=0)
    return "\n".join([first, *(r[max(indent - 4, 0) :] for r in rest)])


def api() -> str:
    from task_scheduler.app import get_app
    from task_scheduler.config import build_settings

    spec = get_app(build_settings({}, environ={}), run_background=False).openapi()
    out = [
        "# HTTP API",
        "",
        "Every route, from the service's OpenAPI document. A running service serves the same "
        "document at `/openapi.json`, browsable at `/docs` (Swagger UI) and `/redoc`.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    for tag, operations in by_tag.items():
        out += [f"## {tag}", ""]
        for method, path, operation in operations:
            out += [f"### `{method} {path}`", ""]
            description = (operation.get("description") or "").strip()
            if description:
                out += [description, ""]
            parameters = operation.get("parameters") or []
            if parameters:
                out += ["| parameter | in | required | description |", "|---|---|---|---|"]
                for p in parameters:
                    text = " ".join((p.get("description") or "").split()).replace("|", "\\|")
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | {text} |"
                    )
                out.append("")
            body = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if body:
                out += [f"Body: `{_schema_name(body)}`", ""]
            answers = ", ".join(
                f"{code} ({' '.join((r.get('description') or '').split())})"
                for code, r in operation.get("responses", {}).items()
            )
            out += [f"Answers: {answers}", ""]
    return "\n".join(out).rstrip() + "\n"


def _schema_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    return schema.get("type", "object")


def main(argv: list[str]) -> int:
    pages = {"configuration.md": configuration(), "api.md": api()}
    if "--check" in argv:
        stale = [name for name, text in pages.items() if (PAGES / name).read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python scripts/docs_reference.py")  # noqa: T201
            return 1
        return 0
    PAGES.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        (PAGES / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

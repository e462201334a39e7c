"""Write the files that restate facts whose one source is the code: the command reference
(from the parser, ``src/scenes/cli``), the config reference and ``configs/default.yaml``
(from the config model, ``src/scenes/config.py``), and the module map (from the tree and each
module's docstring, ``src/scenes``).

    python docs/generate.py           # rewrite them
    python docs/generate.py --check   # exit 1, naming the files, when one is out of date

``make docs`` runs it before building the site, and a test runs ``--check``, so a new option
or a changed default cannot leave the documentation behind.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import textwrap
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS_MD = ROOT / "docs" / "reference" / "commands.md"
CONFIG_MD = ROOT / "docs" / "reference" / "config.md"
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
MODULES_MD = ROOT / "docs" / "reference" / "modules.md"
WIDTH = 96  # argparse wraps at $COLUMNS: fixed, so the output is the same on every machine


# -- commands -------------------------------------------------------------------------------
def option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in (
            "verbose",
            "quiet",
            "progress",
        ):
            continue
        names = ", ".join(action.option_strings) or action.metavar or action.dest
        if action.option_strings and action.nargs != 0:
            value = action.metavar or (
                "{" + ",".join(action.choices) + "}" if action.choices else action.dest.upper()
            )
            names += f" {value}"
        rows.append(f"| `{cell(names)}` | {cell(action.help or '')} |")
    return rows


def cell(text: str) -> str:
    """Text for a Markdown table cell: a bar would end the cell, <class> would be a tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def commands_page() -> str:
    from scenes.cli.parser import build_parser, leaf_parsers

    parser = build_parser()
    lines = [
        "# Command reference",
        "",
        "Generated from the parser by `docs/generate.py`; `scenes COMMAND --help` says the same.",
        "Every command also takes `-v/--verbose`, `-q/--quiet` and `--no-progress`, before or",
        "after the command's name. Exit codes: 0 done; 1 done, but something was found or failed",
        "(`data check` problems, files `predict` or `resize` could not read) or a bug (its",
        "traceback is shown); 2 a mistake in what was asked (the message says what to do); 130",
        "interrupted.",
        "",
    ]
    for command, sub in leaf_parsers(parser):
        usage = sub.format_usage().removeprefix("usage: ").strip()
        lines += [f"## `{command}`", ""]
        if sub.description:
            lines += [sub.description.replace("<", "&lt;").replace(">", "&gt;"), ""]
        lines += ["```", usage, "```", "", "| option | meaning |", "|---|---|"]
        lines += [*option_rows(sub), ""]
    return "\n".join(lines).rstrip() + "\n"


# -- config ---------------------------------------------------------------------------------
def sections():
    from scenes.config import Config

    root = Config()
    yield "", root
    for name, info in Config.model_fields.items():
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"):
            yield name, getattr(root, name)


def scalar_fields(model) -> list[tuple[str, typing.Any]]:
    return [
        (name, info)
        for name, info in type(model).model_fields.items()
        if not (isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"))
    ]


def type_name(annotation) -> str:
    """``int | Literal["auto"]`` -> ``int or "auto"``; ``str | None`` -> ``text or null``."""
    names = {int: "int", float: "number", str: "text", bool: "true/false", type(None): "null"}
    parts = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType)
        else (annotation,)
    )
    shown = []
    for part in parts:
        if typing.get_origin(part) is typing.Literal:
            shown += [f'"{v}"' for v in typing.get_args(part)]
        elif typing.get_origin(part) is list:
            shown.append(f"list of {names.get(typing.get_args(part)[0], 'values')}")
        else:
            shown.append(names.get(part, getattr(part, "__name__", str(part))))
    return " or ".join(shown)


def yaml_value(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def config_page() -> str:
    lines = [
        "# Config reference",
        "",
        "Generated from `src/scenes/config.py` by `docs/generate.py`. A recipe (`--config FILE`,",
        "YAML) sets any of these; `--set section.field=value` overrides one, read as the field's",
        "type; `scenes train`'s flags are shortcuts for the commonest (`scenes train --help`",
        "names the field of each). Every value is checked before any work starts. "
        "`configs/default.yaml` is these defaults, written out.",
        "",
    ]
    for section, model in sections():
        title = f"`{section}`" if section else "top level"
        lines += [f"## {title}", "", "| field | type | default | meaning |", "|---|---|---|---|"]
        for name, info in scalar_fields(model):
            key = f"{section}.{name}" if section else name
            meaning = cell(info.description or "")
            kind = cell(type_name(info.annotation))
            lines.append(
                f"| `{key}` | {kind} | `{yaml_value(info.get_default(call_default_factory=True))}` | {meaning} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def default_yaml() -> str:
    lines = [
        "# Every config field with its default: what `scenes train` runs with no --config.",
        "# Generated from src/scenes/config.py by docs/generate.py (a test keeps them equal).",
        "# Any field: --set section.field=value; the meanings: docs/reference/config.md",
    ]
    for section, model in sections():
        indent = "  " if section else ""
        if section:
            lines.append(f"{section}:")
        for name, info in scalar_fields(model):
            for comment in textwrap.wrap(info.description or "", WIDTH - len(indent) - 2):
                lines.append(f"{indent}# {comment}")
            lines.append(
                f"{indent}{name}: {yaml_value(info.get_default(call_default_factory=True))}"
            )
    return "\n".join(lines) + "\n"


def tune_space_yaml() -> str:
    from scenes.tune.space import DEFAULT_SPACE

    return (
        "# The search space `scenes tune` uses unless --space names another; generated from\n"
        "# src/scenes/tune/space.py by docs/generate.py. Copy it to start your own.\n"
        + DEFAULT_SPACE
    )


# -- modules --------------------------------------------------------------------------------


def first_sentence(path: Path) -> str:
    """A module's docstring up to its first full stop (read, not imported)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def modules_page() -> str:
    package = ROOT / "src" / "scenes"
    lines = [
        "# Modules",
        "",
        "Every module of `src/scenes`, room by room, with the first sentence of its docstring.",
        "Generated from the tree by `docs/generate.py`, so a new, moved or removed module cannot",
        "leave this page behind ([Development](../development.md) says how the rooms depend on",
        "each other).",
    ]
    rooms = [package, *sorted(init.parent for init in package.rglob("*/__init__.py"))]
    for room in rooms:
        title = "top level" if room == package else f"{room.relative_to(package)}/"
        lines += ["", f"## {title}", "", "| module | what it is |", "|---|---|"]
        for path in sorted(room.glob("*.py")):
            if path.name != "__main__.py":
                name = path.relative_to(package).as_posix()
                lines.append(f"| `{name}` | {cell(first_sentence(path))} |")
    return "\n".join(lines) + "\n"


OUTPUTS = {
    COMMANDS_MD: commands_page,
    CONFIG_MD: config_page,
    MODULES_MD: modules_page,
    DEFAULT_YAML: default_yaml,
    ROOT / "configs" / "tune_space.yaml": tune_space_yaml,
}


def main() -> int:
    os.environ["COLUMNS"] = str(WIDTH)
    check = "--check" in sys.argv[1:]
    stale = []
    for path, make in OUTPUTS.items():
        text = make()
        if path.is_file() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run python docs/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Values typed by people into a config tree: ``--set key=value`` read as the field's type,
dotted keys set in a nested mapping, and validation errors said field by field."""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError


def describe_errors(root: type[BaseModel], err: ValidationError) -> str:
    """One line per error, naming the field, what is wrong and what was given."""
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"] if not is_type_tag(str(p)))
        got = e.get("input")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
            section = _section_for(root, e["loc"][:-1])
            if section is not None:
                msg += f"; allowed: {', '.join(section.model_fields)}"
        if not field:  # a rule across fields: its message names them, the input is everything
            lines.append(f"  {msg.removeprefix('Value error, ')}")
        else:
            lines.append(f"  {field}: {msg} (got {got!r})")
    return "invalid config:\n" + "\n".join(lines)


def is_type_tag(part: str) -> bool:
    """pydantic's names of the members of a union in an error's location, not fields."""
    return part.startswith(("function-", "constrained-", "literal[")) or part in {
        "int",
        "float",
        "str",
        "bool",
        "list[int]",
        "list[str]",
    }


def _section_for(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def parse_override(root: type[BaseModel], item: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 0.0003): the value read as the field's type.

    A field that takes text keeps the text as typed (``--set out=2024`` is the folder "2024",
    not a number); a field that takes a list reads ``0,2`` as [0, 2] (as ``--devices`` does);
    other values are read as YAML scalars (numbers, true/false, null).
    """
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. train.lr=3e-4), got {item!r}")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set expects key=value, the key is empty in {item!r}")
    path = key.strip().split(".")
    return path, typed_value(_field_types(root, path), raw)


def _field_types(root: type[BaseModel], path: list[str]) -> tuple[Any, ...]:
    """The types a field at ``path`` accepts (empty for an unknown field: validation names it)."""
    model = root
    for part in path[:-1]:
        field = model.model_fields.get(part)
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return ()
        model = field.annotation
    field = model.model_fields.get(path[-1])
    if field is None:
        return ()
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def typed_value(types: tuple[Any, ...], raw: str) -> Any:
    text = raw.strip()
    if text in ("", "~") or text.lower() == "null":  # YAML's nulls ("none" is a preset name)
        return None
    texts = any(typing.get_args(t) == (str,) for t in types)  # list[str]: paths, names
    if any(typing.get_origin(t) is list for t in types) and not text.startswith("["):
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if texts:
            return parts
        if len(parts) > 1:
            return [_scalar(part) for part in parts]
    if str in types:
        return raw
    return _scalar(text)


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML reads 1e-3 as a string (no dot); treat number-looking strings as floats.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def dotted(tree: dict, prefix: str = "") -> dict:
    """A nested config mapping as ``{"train.lr": 0.003, ...}``: set_nested's inverse."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def set_nested(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part!r} is a value, not a section")
        node = child
    node[path[-1]] = value

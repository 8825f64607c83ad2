"""Render the configuration reference (docs/config.md) from the models' field descriptions.

``python -m atcs.config.reference > docs/config.md`` regenerates it; a test keeps the
committed file equal to the output, so the reference never drifts from the code.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from atcs.config import AtcsConfig

_HEADER = """# Configuration reference

Generated from the code by `python -m atcs.config.reference`; do not edit by hand.
`config.toml` in the repository root is a complete, commented example that runs the demo.

Rules: unknown keys are errors; every error names its field path (`cameras[0].sample_fps`);
numbers are finite (`nan` and `inf` are refused) and within the limits shown (`[a, b]`
inclusive, `(a, b]` excluding a); segment polygons are simple (no crossing edges), of
positive area and inside the image ([0, 1]); time zones are IANA names; a file is UTF-8, at
most 4 MiB (16 MiB with its includes) and nested at most 16 levels;
`${NAME}` and `${NAME:-default}` in any string are read from the environment; relative paths
are relative to the config file; `include = [...]` merges further TOML files (tables merge,
arrays such as `[[cameras]]` are appended). Check a file with `atcs validate-config PATH`.
"""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # a constrained type: its base type
        return _type_name(args[0])
    if isinstance(annotation, type) and not args:
        return annotation.__name__
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    text = str(annotation).replace("typing.", "")
    for prefix in (
        "atcs.config.core.",
        "atcs.config.measures.",
        "atcs.config.",
        "atcs.types.",
        "controllers.spec.",
    ):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None")


def _default(info: FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        value = info.default
        if hasattr(value, "value"):
            value = value.value
        return f"`{value!r}`" if value is not None else "none"
    if info.default_factory is not None:
        return "(see below)" if _models_in(info.annotation) else "empty"
    return "**required**"


def _bounds(info: FieldInfo) -> str:
    """Return the field's own limits: ``[1, 3600]``, ``(0, 60]``, ``>= 0``, ``1..1000 items``."""
    found: dict[str, Any] = {}
    for item in info.metadata:
        for key in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    low = f"[{found['ge']:g}" if "ge" in found else f"({found['gt']:g}" if "gt" in found else ""
    high = f"{found['le']:g}]" if "le" in found else f"{found['lt']:g})" if "lt" in found else ""
    parts = []
    if low and high:
        parts.append(f"{low}, {high}")
    elif low:
        parts.append((">= " if low[0] == "[" else "> ") + low[1:])
    elif high:
        parts.append(("<= " if high[-1] == "]" else "< ") + high[:-1])
    if "min_length" in found or "max_length" in found:
        lo_len, hi_len = found.get("min_length", 0), found.get("max_length")
        unit = "chars" if _type_name(info.annotation).startswith("str") else "items"
        span = f"{lo_len}..{hi_len}" if hi_len is not None else f">= {lo_len}"
        parts.append(f"{span} {unit}")
    return "; ".join(parts)


def _section(title: str, model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    lines = [f"## `{title}`", ""]
    if model.__doc__:
        lines += [model.__doc__.strip().splitlines()[0], ""]
    lines += [
        "| key | type | limits | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        desc = (info.description or "").replace("|", "\\|")
        lines.append(
            f"| `{name}` | {_type_name(info.annotation)} | {_bounds(info)} | {_default(info)} "
            f"| {desc} |"
        )
        for sub in _models_in(info.annotation):
            if sub not in seen:
                seen.add(sub)
                nested.append((f"{title}.{name}" if title != "(top level)" else name, sub))
    lines.append("")
    for sub_title, sub in nested:
        lines += _section(sub_title, sub, seen)
    return lines


def render() -> str:
    """Return the Markdown reference of every configuration key."""
    seen: set[type[BaseModel]] = {AtcsConfig}
    return "\n".join([_HEADER, *_section("(top level)", AtcsConfig, seen)]).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")

"""Validation of one effective configuration against :mod:`edit.config_schema`, with messages a
person can act on: :func:`validate_params` returns the configuration with every default filled in,
or every problem found at once, each naming the dotted key path, the bad value and what is allowed.
Beyond the schema's types it checks the method definitions (:func:`edit.methods.parse_method` and
each step's ``hp``) and the rules that span sections (methods listed but not defined, ...)."""
from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from edit.config_schema import LOSS_SECTIONS, Params
from edit.methods import parse_method

# ---------------------------------------------------------------------------------------- messages
_NUMBER_TEXT = ("float_type", "int_type")


def _walk(loc: tuple, data) -> list:
    """The user's key path of an error location: pydantic's union tags and key markers dropped."""
    parts, node = [], data
    for el in loc:
        if isinstance(el, str) and el[:1] in ("<", "["):
            continue  # a union tag (Tag("<...>")) or a dict-key marker ("[key]")
        if isinstance(node, dict) and el in node:
            node = node[el]
        elif isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node):
            node = node[el]
        else:
            node = None  # a missing key, or below a value that is not a mapping
        parts.append(el)
    return parts


def dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _annotation_at(model: type[BaseModel], parts: list):
    """The schema node (a model class or a type) at a key path, for naming the allowed keys."""
    node: Any = model
    for part in parts:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                return None
            node = field.annotation
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        elif typing.get_origin(node) is list:
            node = typing.get_args(node)[0]
        else:
            return None
    return _unwrap(node)


def _unwrap(node):
    while True:
        origin = typing.get_origin(node)
        if origin is Annotated:
            node = typing.get_args(node)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(node) if a is not type(None)]
            models = [a for a in members if isinstance(_unwrap(a), type) and issubclass(_unwrap(a), BaseModel)]
            node = models[0] if models else members[0]
        else:
            return node


def _message(err: dict, data: dict, model: type[BaseModel], prefix: str) -> str:
    parts = _walk(err["loc"], data)
    path = prefix + dotted(parts) if parts else (prefix.rstrip(".") or "<top level>")
    kind, value, msg = err["type"], err.get("input"), err["msg"]
    if kind == "extra_forbidden":
        parent = _annotation_at(model, parts[:-1])
        allowed = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        return f"{path}: unknown key (value {value!r}); allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return f"{path}: required, but missing"
    if kind == "value_error":  # a model's own rule: its message starts with the key path below the model
        text = msg.removeprefix("Value error, ")
        return f"{path}.{text}" if parts else f"{prefix}{text}"
    hint = ""
    if kind in _NUMBER_TEXT and isinstance(value, str):
        try:
            float(value)
            hint = " (written as text: remove the quotes)"
        except ValueError:
            pass
    if kind == "int_type" and isinstance(value, float):
        hint = " (a whole number without a fractional part)"
    return f"{path}: {value!r} is not allowed: {msg[0].lower() + msg[1:]}{hint}"


def schema_problems(exc: ValidationError, data: dict, model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """One line per error of ``exc``: the dotted key path, the bad value and what is allowed."""
    return [_message(e, data, model, prefix) for e in exc.errors(include_url=False)]


# ---------------------------------------------------------------------------------------- methods
def _step_path(name: str, definition, k: int) -> str:
    return f"method_defs.{name}[{k}]" if isinstance(definition, list) else f"method_defs.{name}.steps[{k}]"


def method_problems(method_defs: dict, train: dict | None) -> list[str]:
    """Every method definition parsed by :func:`edit.methods.parse_method` (semantics: losses,
    sources, pair types, formats, step keys), and every step's ``hp`` checked against the model of
    its ``train.<loss>`` section (``train``: the validated section, or None to skip that)."""
    if not method_defs:
        return ["method_defs: required, a non-empty mapping of method name -> definition"]
    out = []
    for name, definition in method_defs.items():
        if isinstance(definition, dict) and "shots" in definition and (
                not isinstance(definition["shots"], int) or isinstance(definition["shots"], bool)):
            out.append(f"method_defs.{name}.shots: {definition['shots']!r} is not allowed: a whole number")
            continue
        try:
            parse_method(definition, name)
        except (ValueError, TypeError, KeyError) as e:
            out.append(f"method_defs.{name}: {e}")
            continue
        if train is None:
            continue
        steps = definition if isinstance(definition, list) else definition.get("steps") or []
        for k, step in enumerate(steps):
            hp = step.get("hp") or {}
            if not isinstance(hp, dict):
                out.append(f"{_step_path(name, definition, k)}.hp: {hp!r} is not allowed: a mapping of train.{step['loss']} keys")
                continue
            section = LOSS_SECTIONS[step["loss"]]
            try:
                section.model_validate({**train[step["loss"]], **hp})
            except ValidationError as e:
                out += schema_problems(e, hp, section, f"{_step_path(name, definition, k)}.hp.")
    return out


# ---------------------------------------------------------------------------------------- the whole
def _cross_problems(p: dict) -> list[str]:
    """Rules that span sections (checked once every section is valid)."""
    out = []
    defined = set(p["method_defs"])
    for key in ("methods", "grid_methods", "grid_student_methods"):
        for m in p[key]:
            if m not in defined:
                out.append(f"{key}: {m!r} is not allowed: not in method_defs (defined: {', '.join(sorted(defined))})")
    for name in p["grid_students"]:
        if name not in p["student_variants"]:
            out.append(f"grid_students: {name!r} is not allowed: not in student_variants "
                       f"(defined: {', '.join(sorted(p['student_variants'])) or 'none'})")
    if p["student"]["kind"] == "tiny_llama":
        for name, overlay in p["student_variants"].items():
            size = {**p["student"], **overlay}
            if size["hidden_size"] % size["num_heads"]:
                out.append(f"student_variants.{name}: hidden_size {size['hidden_size']} is not a multiple of "
                           f"num_heads {size['num_heads']}")
    if p["data"]["source"] != "embedded":
        for name, spec in p["eval"]["suites"].items():
            if isinstance(spec, str) and spec not in ("train", "val"):
                out.append(f"eval.suites.{name}: {spec!r} is not allowed: data.source is {p['data']['source']!r}, "
                           f"so the data stage writes no embedded test splits; set the suite to null")
    return out


def _plain(value):
    """A fresh copy of plain dicts and lists (YAML aliases in the file share objects)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def validate_params(merged: dict) -> tuple[dict | None, list[str]]:
    """(the configuration with every default filled in, []) for a valid effective configuration,
    else (None, every problem): schema errors, method definitions, and the rules across sections."""
    if not isinstance(merged, dict):
        return None, [f"<top level>: {merged!r} is not allowed: a mapping of sections"]
    try:
        model = Params.model_validate(merged)
    except ValidationError as e:
        problems = schema_problems(e, merged)
        defs = merged.get("method_defs")
        if isinstance(defs, dict):
            problems += method_problems(defs, None)
        return None, problems
    out = _plain(model.model_dump(mode="python"))
    problems = method_problems(out["method_defs"], out["train"]) + _cross_problems(out)
    return (None, problems) if problems else (out, [])

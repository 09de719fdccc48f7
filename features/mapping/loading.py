"""Reading a mapping file: strict YAML, then the model, errors named by YAML path."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from features.errors import CrsRiskError
from features.mapping.sources import KINDS
from features.mapping.spec import Mapping
from features.mapping.values import TYPE_TAGS


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false; ``yes``/``no``/``on``/``off`` stay
    text, so sex or answer codes are not silently turned into booleans) that refuses duplicate
    keys (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _yaml_path(loc: tuple[str | int, ...]) -> str:
    """``('sources', 2, 'patients', 'columns', 'x')`` → ``sources[2].columns.x``.

    Pydantic puts the discriminator tag after a source's index and the branch type names of
    unions into ``loc``; neither is part of the YAML, so both are left out.
    """
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        after_source = i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "sources"
        if (after_source and part in KINDS) or part in TYPE_TAGS or "[" in part:
            continue
        out += f".{part}" if out else part
    return out or "(top level)"


def format_validation_error(name: str, exc: ValidationError) -> list[str]:
    """One line per problem: ``mapping NAME: YAML.PATH: rule``; union branches collapsed."""
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        path = _yaml_path(tuple(err["loc"]))
        if path in seen and err["type"] not in ("extra_forbidden", "missing"):
            continue
        seen.add(path)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the mapping format)"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            path, msg = f"{path}.kind", f"unknown kind {tag!r} (kinds: {', '.join(KINDS)})"
        elif err["type"] == "union_tag_not_found":
            path, msg = f"{path}.kind", f"kind is required (kinds: {', '.join(KINDS)})"
        elif err["type"] in ("literal_error", "enum"):
            msg = f"{msg}; got {err['input']!r}"
        lines.append(f"mapping {name}: {path}: {msg}")
    return lines


def parse_mapping(data: object, name: str = "mapping") -> Mapping:
    """Validate already-parsed YAML; raise :class:`CrsRiskError` listing every problem."""
    if not isinstance(data, dict):
        raise CrsRiskError(f"mapping {name}: the top level must be a mapping with 'sources'")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(name, exc)
        count = f"{len(lines)} problem" + ("s" if len(lines) != 1 else "")
        raise CrsRiskError(f"mapping {name} is invalid ({count}):\n" + "\n".join(lines)) from None


def load_mapping(path: Path | str) -> Mapping:
    """Read and validate a mapping file; errors name the file, the YAML path and the rule."""
    path = Path(path)
    if not path.is_file():
        raise CrsRiskError(f"mapping {path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CrsRiskError(f"mapping {path.name}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise CrsRiskError(f"mapping {path.name}: not UTF-8 text") from None
    return parse_mapping(data, path.name)

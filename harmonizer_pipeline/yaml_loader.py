"""The YAML reading of every file harmonizer owns (harmonizer.yaml; no dagster): a PyYAML
SafeLoader that reads what the text says.

- Keys are always strings: `on:`, `yes:`, `no:`, `off:`, `1:` or `null:` is the text as written
  (YAML 1.1 made `on:` the boolean true, so `alerts: on: [...]` failed as a non-string key).
- A key given twice in one mapping is an error, not a silent override of the first (`<<:`
  merges may still be overridden on purpose).
- Values: only `true` and `false` (any case) are booleans, as in YAML 1.2. `yes`, `no`, `on`,
  `off` are text, because where they stand for data (`nulls: [no]`, `constant: yes`, the
  aliases of a value map) the user means the word. A setting that is a boolean still takes
  them: pydantic reads yes/no/on/off as booleans for a bool field (as go-yaml v3 does for typed
  fields), so `csv_bom: yes` works; an untyped option (a rule's) wants true or false and says so.
- Everything else is PyYAML's usual reading (numbers, null, dates): quote codes such as `"01067"`.

Pandera schema files are not read here: pandera reads its own format (YAML 1.1, so `yes` is true
there), and `harmonizer infer-schema` writes them through pandera, which quotes such words.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"


class HarmonizerLoader(yaml.SafeLoader):
    """SafeLoader with string keys, unique keys and YAML 1.2 booleans (see the module)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, ScalarNode] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                first = seen.setdefault(key_node.value, key_node)
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r} (first at line {first.start_mark.line + 1})", key_node.start_mark
                    )
        self.flatten_mapping(node)
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                key_node.tag = _STR
        return super().construct_mapping(node, deep)


HarmonizerLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL] for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
HarmonizerLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """The document in `text`; yaml.YAMLError (with line and column) when it is not valid YAML."""
    return yaml.load(text, Loader=HarmonizerLoader)

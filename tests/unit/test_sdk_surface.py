"""flowdock_sdk's public surface: `__all__` is what `import *` gives, and its modules keep to each other's public
methods (no module reaches into another object's underscore attributes)."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import flowdock_sdk


def test_star_import_gives_exactly_the_names_in_all() -> None:
    namespace: dict[str, object] = {}
    exec("from flowdock_sdk import *", namespace)  # noqa: S102 (a fixed statement: what users write)
    exported = set(namespace) - {"__builtins__"}
    assert exported == set(flowdock_sdk.__all__)
    assert len(flowdock_sdk.__all__) == len(set(flowdock_sdk.__all__))
    assert all(namespace[name] is not None for name in flowdock_sdk.__all__)


def test_every_public_name_of_the_package_is_listed_in_all() -> None:
    public = {
        name
        for name, value in vars(flowdock_sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(flowdock_sdk.__all__)


def test_no_sdk_module_touches_another_objects_underscore_attributes() -> None:
    offenders = []
    for path in sorted(Path(flowdock_sdk.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not own:
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []

"""What the names of a file mean: our own import table instead of libcst's costly
QualifiedNameProvider (8x the parse time on real code)."""

from __future__ import annotations

import ast

from gradlint.lazy import lazy_module

cst = lazy_module("libcst")


class ImportTable:
    """Maps a local name to the dotted name it was imported as (`nn` -> `torch.nn`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add_import(self, module: str, asname: str | None) -> None:
        if asname:
            self.names[asname] = module
        else:  # `import torch.nn` binds `torch`
            root = module.split(".")[0]
            self.names.setdefault(root, root)

    def add_from(self, module: str, name: str, asname: str | None) -> None:
        if name != "*":
            self.names[asname or name] = f"{module}.{name}" if module else name

    def add_ast(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.add_import(alias.name, alias.asname)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                self.add_from(module, alias.name, alias.asname)

    def add_cst(self, node: cst.Import | cst.ImportFrom) -> None:
        if type(node) is cst.Import:
            for alias in node.names:
                asname = alias.asname.name.value if alias.asname else None  # type: ignore[union-attr]
                self.add_import(dotted(alias.name) or "", asname)
        else:
            module = "." * len(node.relative) + (dotted(node.module) or "" if node.module else "")
            if type(node.names) is cst.ImportStar:
                return
            for alias in node.names:
                asname = alias.asname.name.value if alias.asname else None  # type: ignore[union-attr]
                self.add_from(module, dotted(alias.name) or "", asname)

    def resolve(self, name: str | None) -> str | None:
        """Qualify a dotted name through the imports (`optim.Adam` -> `torch.optim.Adam`)."""
        if not name:
            return name
        head, _, rest = name.partition(".")
        target = self.names.get(head)
        if target is None:
            return name
        return f"{target}.{rest}" if rest else target

    def alias_for(self, qualified: str) -> str | None:
        """A local spelling of a qualified name, if the file's imports give one."""
        best: str | None = None
        for local, target in self.names.items():
            if qualified == target:
                return local
            if qualified.startswith(target + "."):
                candidate = local + qualified[len(target) :]
                if best is None or len(candidate) < len(best):
                    best = candidate
        return best


def collect_module_imports(tree: ast.Module) -> ImportTable:
    """Imports at module level, including those inside top-level if/try/with blocks."""
    table = ImportTable()
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            table.add_ast(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            stack.extend(node.body)
            stack.extend(getattr(node, "orelse", []))
            for handler in getattr(node, "handlers", []):
                stack.extend(handler.body)
            stack.extend(getattr(node, "finalbody", []))
    return table


def dotted(node: cst.BaseExpression | None) -> str | None:
    """`a.b.c` for a Name/Attribute chain; None for anything else."""
    parts: list[str] = []
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is cst.Name:
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def receiver_text(node: cst.BaseExpression) -> str | None:
    """Like `dotted`, but sees through subscripts and calls: `self.opts[i]` -> `self.opts`."""
    parts: list[str] = []
    while True:
        if type(node) is cst.Attribute:
            parts.append(node.attr.value)
            node = node.value
        elif type(node) is cst.Subscript:
            node = node.value
        elif type(node) is cst.Name:
            parts.append(node.value)
            return ".".join(reversed(parts))
        else:
            return None

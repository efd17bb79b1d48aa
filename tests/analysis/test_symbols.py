"""The symbol layer: scoped imports, resolution, constants, the definition index, calls."""

from __future__ import annotations

import ast
import textwrap

from gradlint.analysis.symbols import Symbols, names_read, parameter_roots
from gradlint.analysis.values import UNKNOWN, evaluate


def symbols(code: str) -> Symbols:
    return Symbols(ast.parse(textwrap.dedent(code)))


def first_call(tree: ast.AST, name: str) -> ast.Call:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == name)


def test_module_imports_resolve_everywhere_and_local_imports_only_in_their_function() -> None:
    s = symbols("""
        import torch.nn as nn
        from torch import optim
        try:
            from apex.optimizers import FusedAdam
        except ImportError:
            FusedAdam = None

        def build(p):
            from torch.optim import SGD as S
            return S(p, lr=10)

        def other(p):
            return S(p)
    """)
    assert s.imports.names == {"nn": "torch.nn", "optim": "torch.optim", "FusedAdam": "apex.optimizers.FusedAdam"}
    assert s.resolve_text("optim.Adam") == "torch.optim.Adam"
    inside = first_call(s.functions["build"], "S")
    outside = first_call(s.functions["other"], "S")
    assert s.resolve(inside.func) == "torch.optim.SGD"
    assert s.resolve(outside.func) == "S"  # not imported in `other`
    assert s.resolve(ast.parse("f()(x)").body[0].value.func) is None


def test_a_nested_function_sees_its_enclosing_functions_imports() -> None:
    s = symbols("""
        def outer():
            import torch.nn.functional as F
            def inner(x):
                return F.softsign(x)
            return inner
    """)
    call = first_call(s.tree, "F.softsign")
    assert s.resolve(call.func) == "torch.nn.functional.softsign"
    assert s.torch_name(call.func) == "softsign"


def test_torch_name_is_torchs_or_an_unimported_bare_name_that_is_no_class_of_the_file() -> None:
    s = symbols("""
        from torch import nn
        import mylib
        class Linear: ...
        a = nn.Linear(2, 2); b = mylib.Linear(2, 2); c = Linear(); d = Tanh()
    """)
    calls = {ast.unparse(c.func): c for c in ast.walk(s.tree) if isinstance(c, ast.Call)}
    assert s.torch_name(calls["nn.Linear"].func) == "Linear"
    assert s.torch_name(calls["mylib.Linear"].func) is None
    assert s.torch_name(calls["Linear"].func) is None
    assert s.torch_name(calls["Tanh"].func) == "Tanh"


def test_alias_for_gives_the_shortest_module_level_spelling() -> None:
    s = symbols("""
        import torch
        from torch import nn
        from torch.nn.utils import clip_grad_norm_
        def f():
            import torch.nn.init as I
    """)
    assert s.alias_for("torch.nn.utils.clip_grad_norm_") == "clip_grad_norm_"
    assert s.alias_for("torch.nn.init.kaiming_normal_") == "nn.init.kaiming_normal_"
    assert symbols("x = 1").alias_for("torch.nn.init.normal_") is None


def test_definitions_are_indexed_by_scope_with_methods_and_bases() -> None:
    s = symbols("""
        class Base:
            def update(self): ...
        class Agent(Base):
            def act(self): ...
        if True:
            def helper(): ...
        def main():
            def local(): ...
            class Local: ...
    """)
    assert set(s.classes) == {"Base", "Agent"}
    assert set(s.functions) == {"helper", "main"}
    assert set(s.classes["Agent"].methods) == {"act"}
    assert s.method("Agent", "update") is s.classes["Base"].methods["update"]
    assert set(s.nested[id(s.functions["main"])]) == {"local", "Local"}
    inner = s.nested[id(s.functions["main"])]["local"]
    assert s.scope_of(inner.body[0]) is inner
    assert s.enclosing(inner) == [inner, s.functions["main"]]


def test_module_constants_use_the_one_evaluator() -> None:
    s = symbols("""
        import math
        HIDDEN = 256
        DEPTH: int = 2 * 4
        STD = 1 / math.sqrt(HIDDEN)
        KERNEL = (3, 3)
        NAME = "relu"
        UNKNOWN_ONE = compute()
    """)
    assert s.constants == {"HIDDEN": 256, "DEPTH": 8, "STD": 1 / 16, "KERNEL": (3, 3), "NAME": "relu"}
    assert evaluate(ast.parse("10 ** 10 ** 10", mode="eval").body, {}) is UNKNOWN
    assert evaluate(ast.parse("nn.init.calculate_gain('relu') * -1", mode="eval").body, {}) == -(2 ** 0.5)


def test_calls_come_in_evaluation_order_and_skip_lambda_bodies() -> None:
    s = symbols("""
        out = model(torch.as_tensor(obs).float(), h=init()).mean()
        f = lambda: never()
        xs = [g(v) for v in items()]
    """)
    order = [ast.unparse(c.func) for c, _ in s.calls(s.tree)]
    assert order == ["torch.as_tensor", "torch.as_tensor(obs).float", "init", "model",
                     "model(torch.as_tensor(obs).float(), h=init()).mean", "items", "g"]
    closures = {ast.unparse(c.func): inside for c, inside in s.calls(s.tree)}
    assert closures["g"] is True and closures["items"] is True and closures["model"] is False
    statement = s.tree.body[0]
    assert s.calls(statement) is s.calls(statement)  # memoised


def test_names_read_and_parameter_roots() -> None:
    s = symbols("params = list(self.actor.parameters()) + list(mixer.parameters()) + [w for w in extra]")
    value = s.tree.body[0].value
    assert parameter_roots(s, value) == {"self.actor", "mixer"}
    assert sorted(names_read(value)) == ["extra", "list", "list", "mixer", "self"]


def test_option_defaults_from_argparse_and_an_options_dataclass() -> None:
    s = symbols("""
        import argparse
        from dataclasses import dataclass

        @dataclass
        class Args:
            env_id: str = "CartPole-v1"
            total_timesteps: int = 500000

        parser = argparse.ArgumentParser()
        parser.add_argument("--env-name", type=str, default="Pendulum-v1")
        parser.add_argument("--lr", "-l", default=3e-4)
        parser.add_argument("-g", dest="gamma", default=0.99)
        parser.add_argument("--seed", default=1)
        parser.add_argument("--seed", default=2)
        parser.add_argument("--device", default=pick())
    """)
    assert s.option_defaults == {"env_id": "CartPole-v1", "total_timesteps": 500000, "env_name": "Pendulum-v1",
                                 "lr": 3e-4, "gamma": 0.99}

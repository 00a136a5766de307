"""Mutation testing of the core maths: does the default tier notice when a formula is changed?

    nice -n 10 python scripts/mutate.py                      # every mutant of the core modules
    nice -n 10 python scripts/mutate.py --limit 40 --seed 1  # a random sample of 40 of them
    python scripts/mutate.py --list                          # print the mutants only
    nice -n 10 python scripts/mutate.py --only ddpm/oracles.py:91   # the mutants of one line

Each mutant is one small change to one line of ddpm/beta/{schedule,forward,posterior,losses,sampler}.py
and ddpm/oracles.py, made on the syntax tree: + <-> -, * <-> /, a numeric constant c -> c + 1 and c - 1,
a square root removed
(``x.sqrt()`` -> ``x``, ``torch.sqrt(x)`` -> ``x``), an index or slice bound off by one, a comparison
flipped (< <-> <=, > <-> >=, == <-> !=). The mutant is written into a copy of the repository and the
default tier's tests that exercise that module run on it with ``-x`` (the first failure kills it). A
mutant that survives is either equivalent (documented in docs/mutation.md with the reason) or a gap in
the tests. Docstrings, f-strings and messages are not mutated.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["beta/schedule", "beta/forward", "beta/posterior", "beta/losses", "beta/sampler", "oracles"]
# The default tier's tests that exercise each module (the spec bindings, the reference tests, the properties).
TESTS = {
    "beta/schedule": [
        "tests/test_core.py",
        "tests/test_schedule_properties.py",
        "tests/specs/test_eq04_marginal.py",
        "tests/specs/test_eq07_posterior.py",
        "tests/specs/test_ex31_prior_limit.py",
        "tests/specs/test_sec32_sigma_choices.py",
        "tests/specs/test_eq12_eps_weight.py",
        "tests/specs/test_eq13_decoder.py",
    ],
    "beta/forward": [
        "tests/test_core.py",
        "tests/specs/test_eq04_marginal.py",
        "tests/specs/test_eq12_eps_weight.py",
        "tests/specs/test_eq13_decoder.py",
    ],
    "beta/posterior": [
        "tests/test_core.py",
        "tests/test_posterior_properties.py",
        "tests/specs/test_eq07_posterior.py",
        "tests/specs/test_eq12_eps_weight.py",
        "tests/specs/test_alg1_alg2_lines.py",
    ],
    "beta/losses": [
        "tests/test_core.py",
        "tests/specs/test_ex33_kl_to_mse.py",
        "tests/specs/test_eq12_eps_weight.py",
        "tests/specs/test_ex31_prior_limit.py",
        "tests/specs/test_ex32_elbo_decomposition.py",
        "tests/specs/test_eq13_decoder.py",
        "tests/specs/test_alg1_alg2_lines.py",
    ],
    "beta/sampler": [
        "tests/test_core.py",
        "tests/test_fast_sampler.py",
        "tests/specs/test_alg1_alg2_lines.py",
        "tests/specs/test_alg2_sampler_mc.py",
    ],
    "oracles": [
        "tests/test_core.py",
        "tests/specs/test_q1a_mmse.py",
        "tests/specs/test_q1b_optimal_eps.py",
        "tests/specs/test_q1c_transport.py",
        "tests/specs/test_alg1_lsimple_mc.py",
        "tests/test_sigma_core.py",
        "tests/specs/test_s183_ddim_flow.py",
        "tests/specs/test_s183_ve_vp.py",
    ],
}
OP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
}
CMP_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # the index of the mutation site among the module's sites, in walk order
    variant: int  # which change at that site
    line: int
    description: str


def _skipped(tree: ast.AST) -> set[int]:
    """Ids of nodes not to mutate: docstrings, f-strings, raise statements, annotations, __all__."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        ):
            skip.update(id(n) for n in ast.walk(node.body[0]))
        if isinstance(node, (ast.JoinedStr, ast.Raise)):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            skip.update(id(n) for n in ast.walk(node.annotation))
        if isinstance(node, ast.FunctionDef) and node.returns is not None:
            skip.update(id(n) for n in ast.walk(node.returns))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _sites(tree: ast.AST) -> list[tuple[ast.expr, list[str]]]:
    """Every mutable node with the descriptions of its variants."""
    skip, sites = _skipped(tree), list[tuple[ast.expr, list[str]]]()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in OP_SWAPS:
            sites.append((node, [f"{type(node.op).__name__} -> {OP_SWAPS[type(node.op)].__name__}"]))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in CMP_SWAPS:
            sites.append((node, [f"{type(node.ops[0]).__name__} -> {CMP_SWAPS[type(node.ops[0])].__name__}"]))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            sites.append((node, [f"{node.value!r} -> {node.value!r} + 1", f"{node.value!r} -> {node.value!r} - 1"]))
        elif isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "sqrt" and not node.args)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "sqrt" and len(node.args) == 1)
        ):
            sites.append((node, ["sqrt removed"]))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, (ast.Name, ast.Slice, ast.BinOp)):
            sites.append((node, ["index + 1"]))
    return sites


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.expr, variant: int):
        self.target, self.variant = target, variant

    def visit(self, node: ast.AST) -> ast.AST:
        if node is not self.target:
            return self.generic_visit(node)
        v = self.variant
        if isinstance(node, ast.BinOp):
            node.op = OP_SWAPS[type(node.op)]()
        elif isinstance(node, ast.Compare):
            node.ops = [CMP_SWAPS[type(node.ops[0])]()]
        elif isinstance(node, ast.Constant):
            assert isinstance(node.value, (int, float))  # the only constants _sites picks
            node.value = node.value + (1 if v == 0 else -1)
        elif isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Attribute)  # x.sqrt() or torch.sqrt(x), as _sites picks
            return node.func.value if not node.args else node.args[0]
        elif isinstance(node, ast.Subscript):
            one = ast.Constant(1)
            s = node.slice
            if isinstance(s, ast.Slice):
                if s.lower is not None:
                    s.lower = ast.BinOp(s.lower, ast.Add(), one)
                elif s.upper is not None:
                    s.upper = ast.BinOp(s.upper, ast.Sub(), one)
                else:
                    s.lower = one
            else:
                node.slice = ast.BinOp(s, ast.Add(), one)
        return node


def mutants(module: str) -> list[Mutant]:
    source = (ROOT / "ddpm" / f"{module}.py").read_text()
    out = []
    for i, (node, variants) in enumerate(_sites(ast.parse(source))):
        out += [Mutant(module, i, v, node.lineno, d) for v, d in enumerate(variants)]
    return out


def mutated_source(m: Mutant) -> str:
    tree = ast.parse((ROOT / "ddpm" / f"{m.module}.py").read_text())
    node = _sites(tree)[m.index][0]
    return ast.unparse(ast.fix_missing_locations(_Apply(node, m.variant).visit(tree)))


def run(m: Mutant, workdir: Path, timeout: float) -> tuple[str, float]:
    """'killed', 'survived' or 'timeout', and the seconds it took."""
    target = workdir / "ddpm" / f"{m.module}.py"
    original = target.read_text()
    try:
        target.write_text(mutated_source(m))
        start = time.perf_counter()
        env = dict(os.environ, CI="1", PYTHONDONTWRITEBYTECODE="1")
        try:
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-m",
                "not slow",
                "-p",
                "no:cacheprovider",
                *TESTS[m.module],
            ]
            done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start
        return ("killed" if done.returncode else "survived"), time.perf_counter() - start
    finally:
        target.write_text(original)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modules", nargs="+", default=MODULES, choices=MODULES)
    p.add_argument("--limit", type=int, default=None, help="a random sample of this many mutants")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (past it: undecided, not killed)")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="FILE:LINE",
        help="only the mutants on these lines, e.g. ddpm/oracles.py:91 (to recheck survivors)",
    )
    args = p.parse_args(argv)
    every = [m for mod in args.modules for m in mutants(mod)]
    chosen = every
    if args.limit is not None:
        picked = random.Random(args.seed).sample(every, min(args.limit, len(every)))
        chosen = sorted(picked, key=lambda m: (m.module, m.index, m.variant))
    if args.only is not None:
        chosen = [m for m in chosen if f"ddpm/{m.module}.py:{m.line}" in args.only]
    if args.list:
        for m in chosen:
            print(f"ddpm/{m.module}.py:{m.line}  {m.description}")
        print(f"{len(chosen)} of {len(every)} mutants")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "repo"
        ignore = shutil.ignore_patterns(".git", "__pycache__", "runs", ".venv", "*.egg-info")
        shutil.copytree(ROOT, workdir, ignore=ignore)
        verdicts: dict[str, list[Mutant]] = {"killed": [], "survived": [], "timeout": []}
        for i, m in enumerate(chosen, 1):
            verdict, seconds = run(m, workdir, args.timeout)
            verdicts[verdict].append(m)
            print(
                f"[{i}/{len(chosen)}] {verdict:<8} {seconds:6.1f} s  ddpm/{m.module}.py:{m.line}  {m.description}",
                flush=True,
            )
    killed = len(verdicts["killed"])
    print(
        f"\nmutation score: {killed} of {len(chosen)} killed ({100 * killed / max(len(chosen), 1):.0f}%); "
        f"{len(verdicts['timeout'])} undecided (past --timeout: rerun them with --only and a longer --timeout)"
    )
    for verdict in ("survived", "timeout"):
        for m in verdicts[verdict]:
            print(f"  {verdict}: ddpm/{m.module}.py:{m.line}  {m.description}")
    return 1 if verdicts["survived"] or verdicts["timeout"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Registry completeness and import hygiene.

Every ``Primitive`` defined in ``funcgrad.lax.*``, ``funcgrad.transforms.*``, ``funcgrad.debug``
and ``funcgrad.random`` must carry the rules its kind needs, so a missing rule is a red test
here rather than a ``NotImplementedError`` at run time. Import order is a DAG
(core -> transforms -> lax -> numpy), and ``import funcgrad`` stays light (no numba).
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import funcgrad
from funcgrad.core.primitive import Primitive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(funcgrad.__file__)))
PKG = os.path.dirname(os.path.abspath(funcgrad.__file__))

# Primitives linear in (some of) their operands: reverse mode transposes them, so each needs
# a transpose rule. (Names that do not exist yet are ignored: the list may run ahead of the code.)
KNOWN_LINEAR = {
    "neg",
    "add",
    "sub",
    "add_any",
    "mul",
    "div",
    "reduce_sum",
    "broadcast_in_dim",
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "rev",
    "slice",
    "pad",
    "concatenate",
    "dynamic_slice",
    "dynamic_update_slice",
    "getitem",
    "index_update",
    "select_n",
    "convert_element_type",
    "cumsum",
    "real",
    "imag",
    "conj",
    "complex",
    "dot_general",
    "custom_lin",
    "checkpoint_lin",
    "gather",
    "scatter_add",
    "conv_general_dilated",
    "reduce_window_sum",
    "triangular_solve",
    "copy",
}


def _modules():
    names = ["funcgrad.debug", "funcgrad.random", "funcgrad.jit.api"]
    for pkg_name in ("funcgrad.lax", "funcgrad.transforms"):
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg_name + ".")]
    return names


def _primitives():
    found = {}
    for name in _modules():
        mod = importlib.import_module(name)  # an import error here is a failure too
        for attr, value in vars(mod).items():
            if isinstance(value, Primitive):
                found.setdefault(id(value), (f"{name}.{attr}", value))
    return sorted(found.values(), key=lambda p: p[0])


PRIMITIVES = _primitives()


def test_primitives_were_found():
    names = {p.name for _, p in PRIMITIVES}
    assert {"add", "sin", "dot_general", "reduce_sum", "getitem", "sort", "add_any", "debug_print"} <= names
    assert len(PRIMITIVES) > 80


@pytest.mark.parametrize("where,prim", PRIMITIVES, ids=[w for w, _ in PRIMITIVES])
def test_primitive_has_required_rules(where, prim):
    missing = []
    if not callable(prim.impl):
        missing.append("impl")
    if not callable(prim.abstract_eval):
        missing.append("abstract_eval")
    if prim.differentiable and not callable(prim.jvp):
        missing.append("jvp (or mark it differentiable=False)")
    if not callable(prim.batch):
        missing.append("batch (the vmap rule)")
    if prim.name in KNOWN_LINEAR and not callable(prim.transpose):
        missing.append("transpose (the primitive is linear)")
    jvp_origin = getattr(prim.jvp, "__qualname__", "")
    if jvp_origin.startswith("deflinear") and not callable(prim.transpose):
        missing.append("transpose (its JVP comes from deflinear)")
    assert not missing, f"primitive '{prim.name}' ({where}) lacks: {', '.join(missing)}"


@pytest.mark.parametrize("where,prim", PRIMITIVES, ids=[w for w, _ in PRIMITIVES])
def test_primitive_has_a_lowering(where, prim):
    """Every primitive says how jitted code runs it: a scalar template (fused into numba
    kernels) or the generic impl call, marked explicitly (funcgrad/jit/lowering.py)."""
    from funcgrad.jit.lowering import CALL_IMPL, lowering_of

    rule = lowering_of(prim)
    assert rule is not None, (
        f"primitive '{prim.name}' ({where}) has no jit lowering: give it a scalar template (lower= in its "
        "family factory, or the template table next to it) or list it in CALL_IMPL_PRIMITIVES in "
        "funcgrad/jit/lowering.py"
    )
    assert rule is CALL_IMPL or isinstance(rule, (str, dict)) or callable(rule), (
        f"primitive '{prim.name}' ({where}): lowering {rule!r} is not a template, a template function or CALL_IMPL"
    )


def test_elementwise_templates_format():
    """Every elementwise template formats for the dtypes it names (a typo is a red test here,
    not a numba error in some user's kernel)."""
    import numpy as np

    from funcgrad.jit.lowering import CALL_IMPL, FUSIBLE_DTYPES, lowering_of, scalar_template

    for where, prim in PRIMITIVES:
        rule = lowering_of(prim)
        if rule is CALL_IMPL or rule is None or callable(rule) and not isinstance(rule, (str, dict)):
            continue
        for dtype in sorted(FUSIBLE_DTYPES, key=str):
            tmpl = scalar_template(prim, [dtype] * 3, dtype, {})
            if tmpl is not None:
                src = tmpl.format("a", "b", "c")
                compile(src, where, "eval")  # valid Python
                assert "{" not in src, f"{where}: unfilled field in {src!r}"
    assert scalar_template(lowering_prim("add"), [np.dtype("float32")] * 2, np.dtype("float32"), {}) == "({0} + {1})"


def lowering_prim(name):
    return next(p for _, p in PRIMITIVES if p.name == name)


def test_primitive_names_are_unique():
    seen = {}
    for where, prim in PRIMITIVES:
        assert prim.name not in seen, f"primitive name '{prim.name}' is used by {seen[prim.name]} and {where}"
        seen[prim.name] = where


def _run(code):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, f"subprocess failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_import_funcgrad_does_not_import_numba():
    out = _run("""
        import sys
        import funcgrad, funcgrad.numpy, funcgrad.lax, funcgrad.testing
        heavy = sorted(m for m in ("numba", "llvmlite", "jax", "torch", "scipy") if m in sys.modules)
        print(",".join(heavy))
    """)
    assert out.strip() == "", f"import funcgrad pulled in {out.strip()} (jit must import numba lazily)"


def test_import_layers_follow_the_dag():
    """Loading each layer on its own (with funcgrad/__init__ bypassed) must not load a higher layer."""
    out = _run(f"""
        import importlib, pkgutil, sys, types
        pkg = types.ModuleType("funcgrad")
        pkg.__path__ = [{PKG!r}]
        sys.modules["funcgrad"] = pkg
        layers = [("core", []), ("transforms", ["funcgrad.core"]), ("lax", ["funcgrad.core", "funcgrad.transforms"])]
        above = {{"core": ("funcgrad.transforms", "funcgrad.lax", "funcgrad.numpy"),
                  "transforms": ("funcgrad.lax", "funcgrad.numpy"),
                  "lax": ("funcgrad.numpy",)}}
        bad = []
        for layer, _ in layers:
            sub = importlib.import_module("funcgrad." + layer)
            prefix = "funcgrad." + layer + "."
            names = ["funcgrad." + layer] + [m.name for m in pkgutil.walk_packages(sub.__path__, prefix)]
            for name in names:
                importlib.import_module(name)
            loaded = [m for m in sys.modules if m.startswith(above[layer])]
            if loaded:
                bad.append(layer + " -> " + ",".join(sorted(loaded)))
        print(";".join(bad))
    """)
    assert out.strip() == "", f"import layering violated (core -> transforms -> lax -> numpy): {out.strip()}"


def test_core_has_no_upward_imports_even_lazily():
    """funcgrad.core never imports transforms, lax or numpy, not even inside functions."""
    offenders = []
    core = os.path.join(PKG, "core")
    for fname in sorted(os.listdir(core)):
        if not fname.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(core, fname), encoding="utf-8").read())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                targets.append(("." * node.level) + mod if node.level else mod)
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            for t in targets:
                if t.startswith(("..", "funcgrad.transforms", "funcgrad.lax", "funcgrad.numpy")) and not t.startswith(
                    ("..core", "funcgrad.core")
                ):
                    offenders.append(f"core/{fname}:{node.lineno} imports {t}")
    assert not offenders, "\n".join(offenders)

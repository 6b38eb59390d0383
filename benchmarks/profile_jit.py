"""Where a jitted funcgrad function spends its time: per-step timings of its generated executor.

``fg.jit`` compiles a function to Python source with one line per equation (a call of the
primitive's impl, an ``np.dot`` or a fused numba kernel; see ``jitted.lower(*args).as_text()``).
This diagnostic wraps every callable that source uses in a timer, runs the function a few
times and prints the steps that take the most time, so a workload that is slower than JAX
can be attributed to its equations. It reads the executor's namespace, which is an internal
detail of ``funcgrad.jit`` (a diagnostic, not part of any benchmark's timed code).

Usage::

    from profile_jit import profile
    profile(fg.jit(step), params, x, y)        # prints the table, returns {step: seconds per call}

or ``python benchmarks/profile_jit.py NAME`` for a transform workload of ``bench_jit.py``
(``per_sample``, ``jacrev``, ``hessian``, ``wgan_gp``, ``cnn_sgd`` (default), ``lstm_scan``).
"""

from __future__ import annotations

import collections
import os
import sys
import time

import numpy as np


class _TimedNumpy:
    """Stands in for ``np`` inside an executor: ``np.dot`` calls are timed, the rest is numpy's."""

    def __init__(self, totals):
        self._totals = totals

    def __getattr__(self, name):
        attr = getattr(np, name)
        if name not in ("dot", "matmul"):
            return attr
        totals = self._totals

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = attr(*args, **kwargs)
            totals[f"np.{name} {args[0].shape}x{args[1].shape}"] += time.perf_counter() - t0
            return out

        return timed


def _timed(fn, key, totals):
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        totals[key] += time.perf_counter() - t0
        return out

    return call


def profile(jitted, *args, runs=20, top=15, out=sys.stdout):
    """Time each step of ``jitted``'s executor over ``runs`` calls on ``args``; print the ``top`` steps.

    Returns a dict ``{step name: seconds per call}`` (step names are the executor's: the
    primitive name and the equation index, ``_matmul`` or ``np.dot`` with its operand shapes, or a fused
    kernel's name).

    Example:
        >>> import funcgrad as fg, funcgrad.numpy as fnp
        >>> f = fg.jit(lambda a: fnp.tanh(a @ a).sum())
        >>> times = profile(f, fnp.ones((64, 64)), runs=2, out=None)
        >>> any(k.startswith("_matmul") for k in times)
        True
    """
    import funcgrad as fg

    compiled = jitted.lower(*args)._compiled
    executor = compiled.executor
    ns = executor.__globals__
    totals = collections.defaultdict(float)
    saved = dict(ns)
    names = {id(v): k for k, v in ns.items()}
    try:
        for k, v in list(ns.items()):
            if k in ("np", "_c", "_empty", "_retype", "__builtins__") or not callable(v):
                continue
            if k == "_matmul":

                def mm(a, b, ta, tb, _m=v):
                    t0 = time.perf_counter()
                    res = _m(a, b, ta, tb)
                    key = f"_matmul {a.shape}{'.T' if ta else ''}x{b.shape}{'.T' if tb else ''}"
                    totals[key] += time.perf_counter() - t0
                    return res

                ns[k] = mm
            elif k == "_parallel":

                def par(kernel, *rest, _p=v):
                    t0 = time.perf_counter()
                    res = _p(kernel, *rest)
                    totals[names.get(id(kernel), "parallel kernel")] += time.perf_counter() - t0
                    return res

                ns[k] = par
            else:
                ns[k] = _timed(v, k, totals)
        ns["np"] = _TimedNumpy(totals)
        fg.block_until_ready(jitted(*args))  # warm-up
        totals.clear()
        t0 = time.perf_counter()
        for _ in range(runs):
            fg.block_until_ready(jitted(*args))
        total = (time.perf_counter() - t0) / runs
    finally:
        ns.clear()
        ns.update(saved)
    per_call = {k: v / runs for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
    if out is not None:
        accounted = sum(per_call.values())
        print(f"total {total * 1e3:.3f} ms per call; steps below cover {accounted * 1e3:.3f} ms", file=out)
        for k, v in list(per_call.items())[:top]:
            print(f"  {v * 1e3:9.3f} ms  {100 * v / total:5.1f}%  {k}", file=out)
    return per_call


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jit_workloads

    which = sys.argv[1] if len(sys.argv) > 1 else "cnn_sgd"
    fns = jit_workloads.funcgrad_fns(which, jit_workloads.make_data(which))
    print(f"{which}:")
    profile(fns["jitted"], *fns["args"])


if __name__ == "__main__":
    main()

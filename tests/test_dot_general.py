"""``lax.dot_general`` against ``np.einsum`` for every placement of contracting and batch axes
(operands of rank 1-3, unit axes included): the impl picks different evaluation paths (one BLAS
product with transposed views, a batched matmul, a broadcast multiply) by layout."""

from __future__ import annotations

import itertools

import numpy as np

from funcgrad import lax
import funcgrad.numpy as fnp


def _cases():
    for lnd, rnd in itertools.product(range(1, 4), repeat=2):
        for nc in range(min(lnd, rnd) + 1):
            for nb in range(min(lnd, rnd) - nc + 1):
                for lperm in itertools.permutations(range(lnd)):
                    for rperm in itertools.permutations(range(rnd)):
                        yield lnd, rnd, lperm[:nc], rperm[:nc], lperm[nc : nc + nb], rperm[nc : nc + nb]


def test_dot_general_matches_einsum_for_every_axis_layout():
    rng = np.random.default_rng(0)
    count = 0
    for lnd, rnd, lc, rc, lb, rb in _cases():
        letters = iter("abcdefghijklmnop")
        lshape, rshape, ls, rs = [0] * lnd, [0] * rnd, [""] * lnd, [""] * rnd
        for i, (a, b) in enumerate(zip(lc + lb, rc + rb)):
            lshape[a] = rshape[b] = (2, 3, 1)[i % 3]
            ls[a] = rs[b] = next(letters)
        out = [ls[a] for a in lb]
        for shape, names, sizes in ((lshape, ls, (4, 1, 2)), (rshape, rs, (1, 5, 3))):
            for d in range(len(shape)):
                if not names[d]:
                    shape[d], names[d] = sizes[d % 3], next(letters)
                    out.append(names[d])
        x, y = rng.standard_normal(lshape), rng.standard_normal(rshape)
        want = np.einsum(f"{''.join(ls)},{''.join(rs)}->{''.join(out)}", x, y)
        got = lax.dot_general(fnp.asarray(x), fnp.asarray(y), ((lc, rc), (lb, rb)))
        assert got.shape == want.shape, (lc, rc, lb, rb)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
        count += 1
    assert count > 500

"""Pytrees (API.md section 3): flattening, structures, registration, key paths."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import tree_util as tu
from funcgrad.testing import assert_allclose

Point = collections.namedtuple("Point", ["x", "y"])


def test_public_names():
    for name in (
        "tree_map",
        "tree_leaves",
        "tree_flatten",
        "tree_unflatten",
        "tree_structure",
        "register_pytree_node",
        "register_dataclass",
        "tree_map_with_path",
        "keystr",
    ):
        assert callable(getattr(tu, name)), name
    assert fg.tree_map is tu.tree_map
    assert fg.tree_leaves is tu.tree_leaves
    assert fg.tree_structure is tu.tree_structure


@pytest.mark.parametrize(
    "tree,leaves",
    [
        (1.0, [1.0]),
        ((1, 2), [1, 2]),
        ([1, [2, (3,)]], [1, 2, 3]),
        ({"b": 1, "a": 2}, [2, 1]),  # dict keys sorted
        ({"a": None, "b": (None, 3)}, [3]),  # None has no leaves
        (None, []),
        ((), []),
        ({}, []),
        (Point(1, (2, 3)), [1, 2, 3]),
        (collections.OrderedDict([("b", 1), ("a", 2)]), [1, 2]),  # insertion order
        (collections.defaultdict(list, {"b": 1, "a": 2}), [2, 1]),
        ([fnp.ones(2), np.zeros(1), "text"], None),  # arrays and other objects are leaves
    ],
)
def test_flatten_unflatten_roundtrip(tree, leaves):
    flat, treedef = tu.tree_flatten(tree)
    if leaves is not None:
        assert flat == leaves
    rebuilt = tu.tree_unflatten(treedef, flat)
    assert type(rebuilt) is type(tree)
    assert tu.tree_structure(rebuilt) == treedef
    assert treedef.num_leaves == len(flat)
    assert tu.tree_leaves(tree) == flat or leaves is None


def test_structures_compare_and_hash():
    a = tu.tree_structure({"x": (1, 2), "y": [3]})
    b = tu.tree_structure({"y": [30], "x": (10, 20)})
    assert a == b and hash(a) == hash(b)
    assert a != tu.tree_structure({"x": [1, 2], "y": [3]})  # tuple vs list
    assert a != tu.tree_structure({"x": (1, 2), "z": [3]})  # different keys
    assert tu.tree_structure(Point(1, 2)) != tu.tree_structure((1, 2))
    assert tu.tree_structure(None) != tu.tree_structure(())
    assert "PyTreeDef" in repr(a)


def test_tree_map():
    out = tu.tree_map(lambda x: x * 2, {"a": 1, "b": (2, None, [3])})
    assert out == {"a": 2, "b": (4, None, [6])}
    out = tu.tree_map(lambda x, y: x + y, Point(1, 2), Point(10, 20))
    assert out == Point(11, 22) and type(out) is Point
    with pytest.raises(ValueError, match="structure"):
        tu.tree_map(lambda x, y: x, (1, 2), [1, 2])
    out = tu.tree_map(lambda x: 0 if x is None else x, [None, 1], is_leaf=lambda x: x is None)
    assert out == [0, 1]
    out = tu.tree_map(lambda x: len(x), {"a": (1, 2), "b": (3,)}, is_leaf=lambda x: isinstance(x, tuple))
    assert out == {"a": 2, "b": 1}


def test_unflatten_checks_leaf_count():
    treedef = tu.tree_structure((1, 2))
    with pytest.raises(ValueError, match="2 leaves"):
        tu.tree_unflatten(treedef, [1])


def test_register_pytree_node():
    class Box:
        def __init__(self, value, label):
            self.value, self.label = value, label

    tu.register_pytree_node(Box, lambda b: ((b.value,), b.label), lambda label, c: Box(c[0], label))
    leaves, treedef = tu.tree_flatten([Box(fnp.ones(2), "w"), Box(3.0, "b")])
    assert len(leaves) == 2
    rebuilt = tu.tree_unflatten(treedef, [10, 20])
    assert rebuilt[0].value == 10 and rebuilt[0].label == "w" and rebuilt[1].label == "b"
    assert tu.tree_structure(Box(1, "a")) != tu.tree_structure(Box(1, "b"))  # aux data is structure
    with pytest.raises(ValueError, match="already registered"):
        tu.register_pytree_node(Box, lambda b: ((), None), lambda a, c: Box(None, None))
    g = fg.grad(lambda b: fnp.sum(b.value**2))(Box(fnp.array([1.0, 2.0]), "w"))
    assert type(g) is Box and g.label == "w"
    assert_allclose(g.value, [2.0, 4.0])


def test_register_dataclass():
    @tu.register_dataclass
    @dataclasses.dataclass
    class Linear:
        w: object
        b: object

    @dataclasses.dataclass(frozen=True)
    class Scaled:
        x: object
        scale: float

    tu.register_dataclass(Scaled, data_fields=["x"], meta_fields=["scale"])
    lin = Linear(fnp.ones((2, 2)), fnp.zeros(2))
    assert len(tu.tree_leaves(lin)) == 2
    s = Scaled(fnp.ones(3), 2.0)
    assert len(tu.tree_leaves(s)) == 1
    assert tu.tree_structure(Scaled(1.0, 2.0)) != tu.tree_structure(Scaled(1.0, 3.0))
    doubled = tu.tree_map(lambda v: v * 2, s)
    assert isinstance(doubled, Scaled) and doubled.scale == 2.0
    assert_allclose(doubled.x, [2.0, 2.0, 2.0])
    g = fg.grad(lambda m, x: fnp.sum(x @ m.w + m.b))(lin, fnp.array([1.0, 2.0]))
    assert isinstance(g, Linear)
    assert_allclose(g.w, [[1.0, 1.0], [2.0, 2.0]])
    assert_allclose(g.b, [1.0, 1.0])
    paths = [tu.keystr(p) for p, _ in tu.tree_leaves_with_path({"m": lin})]
    assert paths == ["['m'].w", "['m'].b"]


def test_key_paths_and_keystr():
    tree = {"params": [{"w": 1, "b": 2}, Point(3, 4)], "step": 5}
    pairs, treedef = tu.tree_flatten_with_path(tree)
    assert [tu.keystr(p) for p, _ in pairs] == [
        "['params'][0]['b']",
        "['params'][0]['w']",
        "['params'][1].x",
        "['params'][1].y",
        "['step']",
    ]
    assert [v for _, v in pairs] == tu.tree_leaves(tree)
    assert treedef == tu.tree_structure(tree)
    out = tu.tree_map_with_path(lambda p, v: f"{tu.keystr(p)}={v}", tree)
    assert out["params"][1].x == "['params'][1].x=3"
    out = tu.tree_map_with_path(lambda p, a, b: a + b, (1, 2), (10, 20))
    assert out == (11, 22)
    assert tu.keystr(()) == ""
    assert tu.keystr((tu.DictKey("a"), tu.SequenceKey(0), tu.GetAttrKey("w"))) == "['a'][0].w"


def test_tree_utilities():
    assert tu.all_leaves([1, fnp.ones(2)])
    assert not tu.all_leaves([(1,)])
    assert tu.tree_all([True, (True,)]) and not tu.tree_all([True, (False,)])
    assert tu.tree_reduce(lambda a, b: a + b, {"a": 1, "b": (2, 3)}) == 6
    assert tu.tree_reduce(lambda a, b: a + b, [], 7) == 7


def test_transforms_accept_and_return_pytrees():
    params = {"layers": [Point(fnp.ones(2), fnp.array(0.5))], "scale": fnp.array(2.0), "frozen": None}

    def loss(p):
        layer = p["layers"][0]
        return p["scale"] * fnp.sum(layer.x * layer.y)

    g = fg.grad(loss)(params)
    assert tu.tree_structure(g) == tu.tree_structure(params)
    assert g["frozen"] is None
    assert_allclose(g["layers"][0].x, [1.0, 1.0])
    assert_allclose(g["layers"][0].y, 4.0)
    assert_allclose(g["scale"], 1.0)
    out, t = fg.jvp(lambda p: {"o": loss(p)}, (params,), (tu.tree_map(fnp.ones_like, params),))
    assert set(out) == {"o"} and set(t) == {"o"}
    j = fg.jacrev(lambda p: Point(p["scale"] * 2, p["scale"] * 3))(params)
    assert type(j) is Point and tu.tree_structure(j.x) == tu.tree_structure(params)

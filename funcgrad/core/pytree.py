"""Pytrees: nested containers whose leaves are arrays.

Nodes are tuples, lists, dicts (keys sorted), ``OrderedDict`` (insertion order),
``defaultdict`` (keys sorted), ``None`` (no leaves), namedtuples and any class registered
with :func:`register_pytree_node` / :func:`register_dataclass`.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, NamedTuple
from .errors import InvalidValueError


class SequenceKey(NamedTuple):
    idx: int

    def __str__(self):
        return f"[{self.idx}]"


class DictKey(NamedTuple):
    key: Any

    def __str__(self):
        return f"[{self.key!r}]"


class GetAttrKey(NamedTuple):
    name: str

    def __str__(self):
        return f".{self.name}"


class FlattenedIndexKey(NamedTuple):
    key: int

    def __str__(self):
        return f"[<flat index {self.key}>]"


def keystr(keys) -> str:
    """Render a key path as a string, e.g. ``"['params'][0].weight"``.

    Example:
        >>> from funcgrad import tree_util
        >>> tree_util.keystr((tree_util.DictKey("a"), tree_util.SequenceKey(0)))
        "['a'][0]"
    """
    return "".join(str(k) for k in keys)


class _NodeType(NamedTuple):
    flatten: Callable  # node -> (children, aux)
    unflatten: Callable  # (aux, children) -> node
    flatten_with_keys: Callable | None


_registry: dict[type, _NodeType] = {}


def register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys_func=None):
    """Register ``nodetype`` as a pytree node.

    ``flatten_func(node) -> (children, aux_data)``; ``unflatten_func(aux_data, children) -> node``.

    Example:
        >>> from funcgrad import tree_util
        >>> class Pair:
        ...     def __init__(self, a, b): self.a, self.b = a, b
        >>> tree_util.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))
        >>> tree_util.tree_leaves(Pair(1, 2))
        [1, 2]
    """
    if nodetype in _registry:
        raise InvalidValueError(f"register_pytree_node: {nodetype.__name__} is already registered")
    _registry[nodetype] = _NodeType(flatten_func, unflatten_func, flatten_with_keys_func)


def register_dataclass(cls, data_fields=None, meta_fields=None):
    """Register a dataclass: ``data_fields`` are children, ``meta_fields`` static structure.

    With no field lists, every field is a child. Usable as a decorator.
    """
    if data_fields is None and meta_fields is None:
        data_fields = [f.name for f in dataclasses.fields(cls)]
        meta_fields = []
    data_fields, meta_fields = list(data_fields), list(meta_fields or [])

    def flatten(x):
        return [getattr(x, n) for n in data_fields], tuple(getattr(x, n) for n in meta_fields)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(data_fields, children):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta_fields, aux):
            object.__setattr__(obj, n, v)
        return obj

    def flatten_with_keys(x):
        children, aux = flatten(x)
        return [(GetAttrKey(n), c) for n, c in zip(data_fields, children)], aux

    register_pytree_node(cls, flatten, unflatten, flatten_with_keys)
    return cls


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


def _dict_unflatten(keys, children):
    return dict(zip(keys, children))


register_pytree_node(
    tuple, lambda t: (t, None), lambda _, c: tuple(c), lambda t: ([(SequenceKey(i), c) for i, c in enumerate(t)], None)
)
register_pytree_node(
    list, lambda t: (t, None), lambda _, c: list(c), lambda t: ([(SequenceKey(i), c) for i, c in enumerate(t)], None)
)
register_pytree_node(
    dict, _dict_flatten, _dict_unflatten, lambda d: ([(DictKey(k), d[k]) for k in sorted(d)], tuple(sorted(d)))
)


def _ordered_dict_flatten(d):
    keys = tuple(d)  # insertion order is part of an OrderedDict's meaning
    return [d[k] for k in keys], keys


def _defaultdict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], (d.default_factory, tuple(keys))


register_pytree_node(
    collections.OrderedDict,
    _ordered_dict_flatten,
    lambda keys, children: collections.OrderedDict(zip(keys, children)),
    lambda d: ([(DictKey(k), v) for k, v in d.items()], tuple(d)),
)
register_pytree_node(
    collections.defaultdict,
    _defaultdict_flatten,
    lambda aux, children: collections.defaultdict(aux[0], zip(aux[1], children)),
    lambda d: ([(DictKey(k), d[k]) for k in sorted(d)], _defaultdict_flatten(d)[1]),
)


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields") and type(x) is not tuple


def _node_of(x):
    t = type(x)
    node = _registry.get(t)
    if node is not None:
        return t, node
    if x is None:
        return None, None
    if _is_namedtuple(x):
        return t, _NodeType(
            lambda n: (tuple(n), None),
            lambda _, c, t=t: t(*c),
            lambda n: ([(GetAttrKey(f), getattr(n, f)) for f in n._fields], None),
        )
    return False, None


class PyTreeDef:
    """The structure of a pytree: node types, auxiliary data and children, without leaves."""

    __slots__ = ("node_type", "node_data", "children", "num_leaves", "_hash")

    def __init__(self, node_type, node_data, children, num_leaves):
        self.node_type, self.node_data, self.children, self.num_leaves = node_type, node_data, children, num_leaves
        self._hash = None

    @property
    def num_nodes(self):
        return 1 + sum(c.num_nodes for c in self.children)

    def unflatten(self, leaves):
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise InvalidValueError(f"tree_unflatten: structure {self} has {self.num_leaves} leaves, got {len(leaves)}")
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.node_type is False:  # a leaf
            return next(it)
        if self.node_type is None:
            return None
        children = [c._build(it) for c in self.children]
        t = self.node_type
        node = _registry.get(t)
        if node is None:  # namedtuple
            return t(*children)
        return node.unflatten(self.node_data, children)

    def _key(self):
        return (self.node_type, self.node_data, tuple(c._key() for c in self.children))

    def __eq__(self, other):
        return isinstance(other, PyTreeDef) and self._key() == other._key()

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __repr__(self):
        return f"PyTreeDef({self._str()})"

    def _str(self):
        if self.node_type is False:
            return "*"
        if self.node_type is None:
            return "None"
        inner = ", ".join(c._str() for c in self.children)
        if self.node_type is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.node_type is list:
            return f"[{inner}]"
        if self.node_type is dict:
            return "{" + ", ".join(f"{k!r}: {c._str()}" for k, c in zip(self.node_data, self.children)) + "}"
        return f"{self.node_type.__name__}({inner})"


_LEAF = PyTreeDef(False, None, (), 1)


def _flatten(x, leaves, is_leaf):
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    t, node = _node_of(x)
    if t is False:
        leaves.append(x)
        return _LEAF
    if t is None:
        return PyTreeDef(None, None, (), 0)
    children, aux = node.flatten(x)
    defs = tuple(_flatten(c, leaves, is_leaf) for c in children)
    return PyTreeDef(t, aux, defs, sum(d.num_leaves for d in defs))


def tree_flatten(tree, is_leaf=None):
    """Flatten a pytree into ``(leaves, treedef)``.

    Example:
        >>> from funcgrad import tree_util
        >>> tree_util.tree_flatten({"b": 2, "a": (1, None)})
        ([1, 2], PyTreeDef({'a': (*, None), 'b': *}))
    """
    leaves = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def tree_unflatten(treedef: PyTreeDef, leaves):
    """Rebuild a pytree from its structure and leaves."""
    return treedef.unflatten(leaves)


def tree_leaves(tree, is_leaf=None):
    """The leaves of a pytree, in flattening order."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None):
    """The structure (``PyTreeDef``) of a pytree."""
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f, tree, *rest, is_leaf=None):
    """Apply ``f`` to corresponding leaves of ``tree`` and ``rest``.

    Example:
        >>> from funcgrad import tree_util
        >>> tree_util.tree_map(lambda a, b: a + b, {"x": 1, "y": (2, 3)}, {"x": 10, "y": (20, 30)})
        {'x': 11, 'y': (22, 33)}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r, is_leaf)
        if r_def != treedef:
            raise InvalidValueError(f"tree_map: pytree structures differ: {treedef} vs {r_def}")
        others.append(r_leaves)
    return treedef.unflatten([f(*xs) for xs in zip(leaves, *others)])


def _flatten_with_path(x, path, out, is_leaf):
    if is_leaf is not None and is_leaf(x):
        out.append((path, x))
        return
    t, node = _node_of(x)
    if t is False:
        out.append((path, x))
        return
    if t is None:
        return
    if node.flatten_with_keys is not None:
        keyed, _ = node.flatten_with_keys(x)
    else:
        children, _ = node.flatten(x)
        keyed = [(FlattenedIndexKey(i), c) for i, c in enumerate(children)]
    for k, c in keyed:
        _flatten_with_path(c, path + (k,), out, is_leaf)


def tree_flatten_with_path(tree, is_leaf=None):
    """Like :func:`tree_flatten` but each leaf comes with its key path."""
    out = []
    _flatten_with_path(tree, (), out, is_leaf)
    return out, tree_structure(tree, is_leaf)


def tree_leaves_with_path(tree, is_leaf=None):
    return tree_flatten_with_path(tree, is_leaf)[0]


def tree_map_with_path(f, tree, *rest, is_leaf=None):
    """Like :func:`tree_map` but ``f(path, leaf, *others)`` also receives the key path.

    Example:
        >>> from funcgrad import tree_util
        >>> tree_util.tree_map_with_path(lambda p, x: tree_util.keystr(p), {"a": [1]})
        {'a': ["['a'][0]"]}
    """
    pairs, treedef = tree_flatten_with_path(tree, is_leaf)
    others = [tree_leaves(r, is_leaf) for r in rest]
    return treedef.unflatten([f(p, x, *xs) for (p, x), *xs in zip(pairs, *others)])


def all_leaves(iterable, is_leaf=None):
    return all(tree_structure(x, is_leaf) == _LEAF for x in iterable)


def tree_all(tree):
    return all(tree_leaves(tree))


def tree_reduce(function, tree, initializer=None):
    import functools

    leaves = tree_leaves(tree)
    return (
        functools.reduce(function, leaves) if initializer is None else functools.reduce(function, leaves, initializer)
    )

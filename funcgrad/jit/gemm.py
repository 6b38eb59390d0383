"""Matrix products for jitted code: a register-blocked GEMM generated for the host CPU.

NumPy's BLAS is built for a range of CPUs and picks its kernels when it loads (and may be pinned
to an older family, e.g. ``OPENBLAS_CORETYPE=Haswell`` on a machine with AVX-512); XLA compiles
its products for the host. This module does the same for the float32/float64 products of jitted
functions: ``C = op(A) @ op(B)`` with the blocking of BLIS/GotoBLAS, written as LLVM IR for the
host's vector width and compiled once per dtype with the kernels' compiler
(:mod:`funcgrad.jit.native`), then cached on disk next to the fused kernels. One entry point
serves the four combinations of transposed operands (a flag argument).

Algorithm, for the columns ``[lo, hi)`` of C (the unit of work of one thread):

* ``K`` is cut in blocks of ``KC``, ``N`` in blocks of ``NC``, ``M`` in blocks of ``MC``.
* Each ``KC x NC`` block of B is packed into column panels of ``NR`` (element ``(p, j)`` of a
  panel at ``p * NR + j``, zero padded): by vector copies when B's rows are contiguous, by a
  transposing copy when B is stored transposed. The micro-kernel then reads B sequentially,
  and a panel stays in L1 while it sweeps down the rows of A (a B read in place with a
  power-of-two row stride would thrash the cache's sets). Where the rows of C are few (at most
  two row tiles: a small batch), each element of B would be copied to be used once or twice,
  so B's rows are read in place and only a partial last panel is packed (16x64x256 float32:
  4.1 -> 3.3 us). A loop's weights can be packed once by the caller (``gemm_pack``).
* A stored with contiguous rows is read in place (a broadcast per element needs no vector
  layout); a transposed A is packed into row panels of ``MR`` (element ``(i, p)`` at
  ``p * MR + i``), by masked vector copies.
* The micro-kernel keeps an ``MR x NR`` tile of C in ``MR * NR / lanes`` vector registers
  (``NR`` = two vectors) and for each ``p`` does one fused multiply-add per register: a
  broadcast element of A times a vector of B. The tile is written (first K block) or added
  to C (later blocks); an edge tile goes through a scratch tile so nothing past C's edges is
  touched.

``MR`` is as large as the vector registers allow (14 with 32 registers, 6 with 16), so each
B vector loaded feeds ``MR`` multiply-adds; with 32 registers a second micro-kernel of 8-row
tiles takes row counts that 14 pads badly (16 rows: 2 x 8, not 2 x 14). The caller splits the columns among threads
(:func:`matmul`); each thread packs into its own workspace.

:func:`matmul` is used by jitted code for 2-D products (funcgrad.jit.lowering) when its
arguments qualify, the product is large enough for packing to pay and C has at least NR/2
columns (narrower, most vector lanes would idle: NumPy's BLAS measures faster); otherwise, and when
native code is off (``FUNCGRAD_JIT_NATIVE=0``, ``FUNCGRAD_JIT_GEMM=0``), ``np.dot`` runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading

import numpy as np

from . import workers
from .workers import WORDS as WORKER_WORDS
from .workers import ir_stores

logger = logging.getLogger("funcgrad.jit")

ENABLED = os.environ.get("FUNCGRAD_JIT_GEMM", "1") != "0"

KC = 256  # depth of a K block: a B micro-panel (KC x NR) stays in L1, an A block in L2
MC = 168  # rows of an A block (a multiple of MR for both register counts)
NC = 1024  # columns of a packed B block

# Products below this many multiply-adds go to np.dot: the call and packing cost more than
# the faster inner loop gains (measured with benchmarks/bench_gemm.py).
MIN_WORK = 1 << 15
# Products of at least this many multiply-adds are split by columns among threads (smaller ones
# lose more to the hand-off than they gain: measured on the LSTM scan, benchmarks/bench_jit.py).
PARALLEL_WORK = 1 << 19
ROW_STRIP = 8  # rows per part when a product one register tile wide is split by rows


def _host_flags():
    """The host's CPU feature names (from /proc/cpuinfo where there is one, else llvmlite)."""
    from .native import _host_fingerprint

    text = _host_fingerprint()
    return set(text.replace(":", " ").split())


class Profile:
    """Register blocking for a dtype on this host: vector lanes, ``MR`` (tile rows) and ``NR``
    (tile columns, two vectors)."""

    def __init__(self, dtype, flags):
        width = 512 if "avx512f" in flags else 256 if "avx2" in flags or "avx" in flags else 128
        registers = 32 if width == 512 or "asimd" in flags else 16
        self.dtype = np.dtype(dtype)
        self.lanes = width // (8 * self.dtype.itemsize)
        self.vectors = 2
        self.nr = self.lanes * self.vectors
        # MR accumulators per vector column, plus the B vectors and one broadcast
        self.mr = (registers - self.vectors - 1) // self.vectors
        # a second tile height for row counts MR pads badly (16 = 2 x 8 rows); None: MR only
        self.short_mr = 8 if self.mr > 8 else None
        self.mc = MC - MC % self.mr
        # workspace (elements): an A block, a packed B block, an edge tile, and room to align
        # them to 64 bytes
        self.workspace = self.mc * KC + KC * NC + self.mr * self.nr + 64


# -- IR generation (the cold path: llvmlite.ir) -------------------------------------------------


class _Builder:
    """llvmlite.ir helpers for counted loops."""

    def __init__(self, builder):
        import llvmlite.ir as ir

        self.ir, self.b = ir, builder
        self.i64 = ir.IntType(64)

    def const(self, v):
        return self.ir.Constant(self.i64, v)

    def min(self, a, b):
        return self.b.select(self.b.icmp_signed("<", a, b), a, b)

    @contextlib.contextmanager
    def loop(self, start, stop, step, name):
        """``for i in range(start, stop, step)`` (step > 0); yields ``i``."""
        b = self.b
        pre = b.block
        head = b.append_basic_block(name + ".head")
        body = b.append_basic_block(name + ".body")
        end = b.append_basic_block(name + ".end")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(self.i64, name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, end)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, step if not isinstance(step, int) else self.const(step))
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(end)


def _small(f):
    """Mark a packing function: internal, not inlined, optimised for size (it is not where the
    time goes, and LLVM compiles it faster)."""
    f.linkage = "internal"
    for attr in ("noinline", "optsize", "minsize"):
        f.attributes.add(attr)


def _module(profile, sym, sym_par, sym_post, sym_join, sym_pack):
    """The IR module of ``C = op(A) @ op(B)``: entry point ``i32 sym(i64 *slots)`` reading the
    slots the trampoline fills (C, A, B, workspace as (data, size); then N, M, K, flags, lo,
    hi; ``flags = 1 + trans_a + 2 * trans_b + 4 * accumulate``, accumulate adding the product to
    C), ``sym_par``, the same split among the worker threads (see :func:`_parallel_ir`), and
    ``sym_post``/``sym_join``, products handed to the workers while the caller goes on
    (:func:`_async_ir`), and ``sym_pack``, B packed once for products flagged ``8``
    (prepacked: their B argument is the packed buffer)."""
    import llvmlite.ir as ir

    T = ir.FloatType() if profile.dtype == np.float32 else ir.DoubleType()
    lanes, nv, MR, NR = profile.lanes, profile.vectors, profile.mr, profile.nr
    V = ir.VectorType(T, lanes)
    Mask = ir.VectorType(ir.IntType(1), lanes)
    i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
    i8 = ir.IntType(8)
    ptr = ir.PointerType()
    tname = "f32" if profile.dtype == np.float32 else "f64"
    size = profile.dtype.itemsize

    m = ir.Module(name="funcgrad_gemm")
    vtag = f"v{lanes}{tname}"
    fma = ir.Function(m, ir.FunctionType(V, [V, V, V]), name=f"llvm.fma.{vtag}")
    mload = ir.Function(m, ir.FunctionType(V, [ptr, i32, Mask, V]), name=f"llvm.masked.load.{vtag}.p0")
    mstore = ir.Function(m, ir.FunctionType(ir.VoidType(), [V, ptr, i32, Mask]), name=f"llvm.masked.store.{vtag}.p0")
    zero_v = ir.Constant(V, [0.0] * lanes)
    lane_ids = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))

    def gep(b, base, offset):
        """``base`` plus ``offset`` bytes (an i64 value or a Python int)."""
        if isinstance(offset, int):
            offset = ir.Constant(i64, offset)
        return b.gep(base, [offset], inbounds=True, source_etype=i8)

    def elem(b, base, index):
        """Address of element ``index`` of an array of T at ``base``."""
        return gep(b, base, b.mul(index, ir.Constant(i64, size)))

    def splat(b, value, vtype):
        """A vector of ``vtype`` with ``value`` in every lane."""
        undef = ir.Constant(vtype, ir.Undefined)
        x = b.insert_element(undef, value, ir.Constant(i32, 0))
        return b.shuffle_vector(x, undef, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

    def lane_mask(b, valid, first_lane):
        """Lanes ``first_lane + j < valid``."""
        limit = b.sub(valid, ir.Constant(i64, first_lane))
        return b.icmp_signed("<", lane_ids, splat(b, limit, ir.VectorType(i64, lanes)))

    def load_v(b, p, mask=None):
        if mask is None:
            ld = b.load(p, typ=V)
            ld.align = size
            return ld
        return b.call(mload, [p, ir.Constant(i32, size), mask, zero_v])

    # -- micro-kernel: C[0:mrv, 0:nrv] (+)= A (MR x kc) @ Bp (kc x NR, packed). Element (i, p)
    # of A is at ap[i*ars + p*aps]: (ars, aps) = (1, MR) for a packed panel, (lda, 1) for rows
    # read in place. Rows past mrv read row mrv-1 and are not stored. ``tile``: MR x NR scratch.
    def micro_kernel(MR):
        fnty = ir.FunctionType(ir.VoidType(), [i64, ptr, i64, i64, ptr, i64, i64, ptr, i64, i64, i1, ptr])
        f = ir.Function(m, fnty, name=f"micro{MR}")
        f.linkage = "internal"
        f.attributes.add("noinline")
        kc, ap, ars, aps, bp, bs, nrv, cp, ldc, mrv, acc_in, tile = f.args
        entry = f.append_basic_block("entry")
        b = ir.IRBuilder(entry)
        L = _Builder(b)
        arsb = b.mul(ars, L.const(size))
        last = b.sub(mrv, L.const(1))
        a_off = [b.mul(arsb, L.min(L.const(i), last)) for i in range(MR)]
        apsb = b.mul(aps, L.const(size))
        bstep = b.mul(bs, L.const(size))  # B's row stride: NR in a packed panel, N read in place
        head = f.append_basic_block("k.head")
        body = f.append_basic_block("k.body")
        done = f.append_basic_block("k.done")
        b.branch(head)
        b.position_at_end(head)
        p = b.phi(i64, "p")
        p.add_incoming(L.const(0), entry)
        bptr = b.phi(ptr, "bptr")
        bptr.add_incoming(bp, entry)
        aptr = b.phi(ptr, "aptr")
        aptr.add_incoming(ap, entry)
        accs = []
        for i in range(MR):
            row = []
            for v in range(nv):
                phi = b.phi(V, f"c{i}_{v}")
                phi.add_incoming(zero_v, entry)
                row.append(phi)
            accs.append(row)
        b.cbranch(b.icmp_signed("<", p, kc), body, done)
        b.position_at_end(body)
        bv = [load_v(b, gep(b, bptr, v * lanes * size)) for v in range(nv)]
        new = []
        for i in range(MR):
            a = b.load(gep(b, aptr, a_off[i]), typ=T)
            a.align = size
            a_all = splat(b, a, V)
            new.append([b.call(fma, [a_all, bv[v], accs[i][v]]) for v in range(nv)])
        for i in range(MR):
            for v in range(nv):
                accs[i][v].add_incoming(new[i][v], body)
        p.add_incoming(b.add(p, L.const(1)), body)
        bptr.add_incoming(gep(b, bptr, bstep), body)
        aptr.add_incoming(gep(b, aptr, apsb), body)
        b.branch(head)

        # the tile: C = acc on the first K block (acc_in false), C += acc on later ones. A full
        # tile goes straight to C (the old value is loaded either way: a select, not a branch,
        # keeps this code small); an edge tile goes to a buffer copied element by element.
        b.position_at_end(done)
        full_blk = f.append_basic_block("store.full")
        part_blk = f.append_basic_block("store.part")
        ret_blk = f.append_basic_block("ret")
        full = b.and_(b.icmp_signed("==", mrv, L.const(MR)), b.icmp_signed("==", nrv, L.const(NR)))
        b.cbranch(full, full_blk, part_blk)

        def store_tile(dst, ld, accumulate):
            ldb = b.mul(ld, L.const(size))
            for i in range(MR):
                row = gep(b, dst, b.mul(ldb, L.const(i)))
                for v in range(nv):
                    q = gep(b, row, v * lanes * size)
                    new = accs[i][v]
                    if accumulate is not None:
                        new = b.fadd(b.select(accumulate, load_v(b, q), zero_v), new)
                    st = b.store(new, q)
                    st.align = size

        b.position_at_end(full_blk)
        store_tile(cp, ldc, acc_in)
        b.branch(ret_blk)
        b.position_at_end(part_blk)
        store_tile(tile, L.const(NR), None)
        with L.loop(L.const(0), mrv, 1, "ti") as ti:
            with L.loop(L.const(0), nrv, 1, "tj") as tj:
                q = elem(b, cp, b.add(b.mul(ti, ldc), tj))
                x = b.load(elem(b, tile, b.add(b.mul(ti, L.const(NR)), tj)), typ=T)
                old = b.select(acc_in, b.load(q, typ=T), ir.Constant(T, 0.0))
                b.store(b.fadd(old, x), q)
        b.branch(ret_blk)
        b.position_at_end(ret_blk)
        b.ret_void()
        return f

    # -- packing ------------------------------------------------------------------------------
    half = lanes // 2
    interleave = (
        ir.Constant(ir.VectorType(i32, lanes), [k // 2 + (k % 2) * lanes for k in range(lanes)]),
        ir.Constant(ir.VectorType(i32, lanes), [half + k // 2 + (k % 2) * lanes for k in range(lanes)]),
    )

    def transpose(b, rows):
        """The columns of a lanes x lanes block given as its rows: log2(lanes) rounds of
        interleaving row i with row i + lanes/2 (the perfect-shuffle transpose)."""
        n = len(rows)
        for _ in range(n.bit_length() - 1):
            nxt = []
            for i in range(n // 2):
                nxt += [b.shuffle_vector(rows[i], rows[i + n // 2], mask) for mask in interleave]
            rows = nxt
        return rows

    def load_elem(b, base, index):
        x = b.load(elem(b, base, index), typ=T)
        x.align = size
        return x

    def pack_a():
        """Ap[r/MR][p*MR + i] = A[r + i, p] for an mc x kc block of an A stored transposed
        (element (i, p) at ``i + p*sk``: MR contiguous elements per p), rows past ``mc`` zero."""
        f = ir.Function(m, ir.FunctionType(ir.VoidType(), [ptr, i64, i64, i64, ptr]), name="pack_a")
        _small(f)
        a, sk, mc, kc, out = f.args
        b = ir.IRBuilder(f.append_basic_block("entry"))
        L = _Builder(b)
        chunks = range(0, MR, lanes)
        with L.loop(L.const(0), mc, MR, "r") as r:
            rows = L.min(L.const(MR), b.sub(mc, r))
            load_masks = [lane_mask(b, rows, c) for c in chunks]
            store_masks = [lane_mask(b, L.const(MR), c) for c in chunks]
            with L.loop(L.const(0), kc, 1, "p") as p:
                src = b.add(r, b.mul(p, sk))
                dst = b.add(b.mul(r, kc), b.mul(p, L.const(MR)))
                for q, c in enumerate(chunks):
                    x = load_v(b, elem(b, a, b.add(src, L.const(c))), load_masks[q])
                    b.call(mstore, [x, elem(b, out, b.add(dst, L.const(c))), ir.Constant(i32, size), store_masks[q]])
        b.ret_void()
        return f

    def pack_b(trans_b):
        """Bp[j/NR][p*NR + j%NR] = B[p, j] for a kc x nc block of B (element (p, j) at
        ``p*sk + j*sn``), columns past ``nc`` zero."""
        f = ir.Function(m, ir.FunctionType(ir.VoidType(), [ptr, i64, i64, i64, i64, ptr]), name=f"pack_b{int(trans_b)}")
        _small(f)
        bsrc, sk, sn, kc, nc, out = f.args
        b = ir.IRBuilder(f.append_basic_block("entry"))
        L = _Builder(b)
        with L.loop(L.const(0), nc, NR, "jp") as jp:
            cols = L.min(L.const(NR), b.sub(nc, jp))
            panel = b.mul(jp, kc)
            if not trans_b:  # rows contiguous: vector copies, masked at the right edge
                masks = [lane_mask(b, cols, v * lanes) for v in range(nv)]
                with L.loop(L.const(0), kc, 1, "p") as p:
                    src = b.add(b.mul(p, sk), jp)
                    dst = b.add(panel, b.mul(p, L.const(NR)))
                    for v in range(nv):
                        x = load_v(b, elem(b, bsrc, b.add(src, L.const(v * lanes))), masks[v])
                        st = b.store(x, elem(b, out, b.add(dst, L.const(v * lanes))))
                        st.align = size
            else:  # columns contiguous: a transpose

                def by_element(p_start):  # columns past the edge read the last one, store zero
                    last = b.sub(cols, L.const(1))
                    with L.loop(L.const(0), L.const(NR), 1, "j") as j:
                        inside = b.icmp_signed("<", j, cols)
                        src = b.mul(b.add(jp, L.min(j, last)), sn)
                        with L.loop(p_start, kc, 1, "p") as p:
                            x = load_elem(b, bsrc, b.add(src, b.mul(p, sk)))
                            x = b.select(inside, x, ir.Constant(T, 0.0))
                            st = b.store(x, elem(b, out, b.add(panel, b.add(b.mul(p, L.const(NR)), j))))
                            st.align = size

                full = b.icmp_signed("==", cols, L.const(NR))
                with b.if_else(full) as (whole, edge):
                    with whole:  # lanes x lanes blocks transposed in registers, then the last rows
                        whole_depth = b.and_(kc, L.const(-lanes))
                        with L.loop(L.const(0), whole_depth, lanes, "p0") as p0:
                            with L.loop(L.const(0), L.const(NR), lanes, "h") as h:
                                rows = []
                                for j in range(lanes):
                                    src = b.add(b.mul(b.add(jp, b.add(h, L.const(j))), sn), p0)
                                    rows.append(load_v(b, elem(b, bsrc, src)))
                                for q, vec in enumerate(transpose(b, rows)):
                                    dst = b.add(panel, b.add(b.mul(b.add(p0, L.const(q)), L.const(NR)), h))
                                    st = b.store(vec, elem(b, out, dst))
                                    st.align = size
                        by_element(whole_depth)
                    with edge:
                        by_element(L.const(0))
        b.ret_void()
        return f

    # -- the entry point ------------------------------------------------------------------------
    def block_function():
        """``i32 gemm_block(i64 *slots)``: the product for columns [lo, hi) and rows [r0, r1)
        of C; slots as the entry point's, then r0, r1."""
        f = ir.Function(m, ir.FunctionType(i32, [ptr]), name="gemm_block")
        f.attributes.add("optsize")
        f.attributes.add("minsize")
        (block,) = f.args
        b = ir.IRBuilder(f.append_basic_block("entry"))
        L = _Builder(b)

        def slot(k, typ):
            q = gep(b, block, L.const(8 * k))
            return b.load(q, typ=typ)

        cptr, csize = slot(0, ptr), slot(1, i64)
        aptr_, asize = slot(2, ptr), slot(3, i64)
        bptr_, bsize = slot(4, ptr), slot(5, i64)
        wptr, wsize = slot(6, ptr), slot(7, i64)
        N, M, K, flags, lo, hi, r0, r1 = (slot(8 + k, i64) for k in range(8))
        ok = b.and_(b.icmp_signed("==", csize, b.mul(M, N)), b.icmp_signed("==", asize, b.mul(M, K)))
        # B as stored, or packed once by the caller (``gemm_pack``: one block, K <= KC, N <= NC)
        prepacked = b.icmp_signed("!=", b.and_(b.sub(flags, L.const(1)), L.const(8)), L.const(0))
        packed_size = b.mul(K, b.mul(b.sdiv(b.add(N, L.const(NR - 1)), L.const(NR)), L.const(NR)))
        one_block = b.and_(b.icmp_signed("<=", K, L.const(KC)), b.icmp_signed("<=", N, L.const(NC)))
        b_ok = b.select(
            prepacked,
            b.and_(one_block, b.icmp_signed("==", bsize, packed_size)),
            b.icmp_signed("==", bsize, b.mul(K, N)),
        )
        ok = b.and_(ok, b_ok)
        ok = b.and_(ok, b.icmp_signed(">=", wsize, L.const(profile.workspace)))
        bad = f.append_basic_block("bad")
        run = f.append_basic_block("run")
        b.cbranch(ok, run, bad)
        b.position_at_end(bad)
        b.ret(ir.Constant(i32, 1))
        b.position_at_end(run)

        # workspace: A block, then B block, both aligned to 64 bytes
        waddr = b.ptrtoint(wptr, i64)
        pad = b.and_(b.sub(L.const(0), waddr), L.const(63))
        ap_buf = gep(b, wptr, pad)
        bp_buf = gep(b, ap_buf, L.const(profile.mc * KC * size))
        tile = gep(b, bp_buf, L.const(KC * NC * size))

        # flags = 1 + trans_a + 2 * trans_b + 4 * accumulate + 8 * prepacked; element strides of
        # A (i, p) and B (p, j)
        fl = b.sub(flags, L.const(1))
        trans_a = b.icmp_signed("!=", b.and_(fl, L.const(1)), L.const(0))
        trans_b = b.icmp_signed("!=", b.and_(fl, L.const(2)), L.const(0))
        accumulate = b.icmp_signed("!=", b.and_(fl, L.const(4)), L.const(0))  # C += op(A) @ op(B)
        sm, sk = b.select(trans_a, L.const(1), K), b.select(trans_a, M, L.const(1))
        bk, bn = b.select(trans_b, L.const(1), N), b.select(trans_b, K, L.const(1))
        with L.loop(lo, hi, NC, "jc") as jc:
            nc = L.min(L.const(NC), b.sub(hi, jc))
            with L.loop(L.const(0), K, KC, "pc") as pc:
                kc = L.min(L.const(KC), b.sub(K, pc))
                acc = b.or_(b.icmp_signed(">", pc, L.const(0)), accumulate)
                bblock = elem(b, bptr_, b.add(b.mul(pc, bk), b.mul(jc, bn)))
                # Few rows of C (at most two row tiles): B's rows are read in place, as packing
                # would copy each element of B to use it once or twice; only a partial last
                # panel is packed (full vectors must not read past B's end).
                inplace = b.and_(b.not_(b.or_(trans_b, prepacked)), b.icmp_signed("<=", b.sub(r1, r0), L.const(2 * MR)))
                rem = b.srem(nc, L.const(NR))
                with b.if_then(b.not_(prepacked)):
                    with b.if_else(inplace) as (direct, copied):
                        with direct:
                            with b.if_then(b.icmp_signed(">", rem, L.const(0))):
                                b.call(pbs[0], [elem(b, bblock, b.sub(nc, rem)), bk, bn, kc, rem, bp_buf])
                        with copied:
                            with b.if_else(trans_b) as (cols, rows):
                                with cols:
                                    b.call(pbs[1], [bblock, bk, bn, kc, nc, bp_buf])
                                with rows:
                                    b.call(pbs[0], [bblock, bk, bn, kc, nc, bp_buf])
                # the packed panels of columns [jc, jc + nc): (jc / NR) panels of kc x NR in
                packed = b.select(prepacked, elem(b, bptr_, b.mul(jc, kc)), bp_buf)
                with L.loop(r0, r1, profile.mc, "ic") as ic:
                    mc = L.min(L.const(profile.mc), b.sub(r1, ic))
                    ablock = elem(b, aptr_, b.add(b.mul(ic, sm), b.mul(pc, sk)))
                    with b.if_then(trans_a):  # columns of A contiguous: packed into row panels
                        b.call(pa, [ablock, sk, mc, kc, ap_buf])
                    with L.loop(L.const(0), nc, NR, "jr") as jr:
                        nrv = L.min(L.const(NR), b.sub(nc, jr))
                        whole = b.icmp_signed("==", nrv, L.const(NR))
                        bpanel = elem(b, packed, b.mul(jr, kc))
                        in_b = b.and_(inplace, whole)  # a panel read from B itself
                        bpanel = b.select(in_b, elem(b, bblock, jr), b.select(inplace, bp_buf, bpanel))
                        bs = b.select(in_b, N, L.const(NR))
                        # tiles of MR rows, or of short_mr where that pads A's rows less (16 rows:
                        # 2 x 8, not 2 x 14); in-place A only (a packed panel has MR rows)
                        short = L.const(0)
                        if short_mr:
                            padded = [
                                b.mul(b.sdiv(b.add(mc, L.const(r - 1)), L.const(r)), L.const(r)) for r in (short_mr, MR)
                            ]
                            short = b.and_(b.not_(trans_a), b.icmp_signed("<", *padded))
                        step = b.select(short, L.const(short_mr or MR), L.const(MR))
                        with L.loop(L.const(0), mc, step, "ir") as ir_:
                            mrv = L.min(step, b.sub(mc, ir_))
                            ctile = elem(b, cptr, b.add(b.mul(b.add(ic, ir_), N), b.add(jc, jr)))
                            # a packed panel, or rows of A (contiguous) read in place
                            apanel = b.select(trans_a, elem(b, ap_buf, b.mul(ir_, kc)), elem(b, ablock, b.mul(ir_, K)))
                            ars, aps = b.select(trans_a, L.const(1), K), b.select(trans_a, L.const(MR), L.const(1))
                            args = [kc, apanel, ars, aps, bpanel, bs, nrv, ctile, N, mrv, acc, tile]
                            if short_mr:
                                with b.if_else(short) as (few, many):
                                    with few:
                                        b.call(micro_short, args)
                                    with many:
                                        b.call(micro, args)
                            else:
                                b.call(micro, args)
        b.ret(ir.Constant(i32, 0))

    pa, pbs = pack_a(), (pack_b(False), pack_b(True))
    micro = micro_kernel(MR)
    short_mr = profile.short_mr
    micro_short = micro_kernel(short_mr) if short_mr else None
    block_function()
    # the entry point: every row of C
    f = ir.Function(m, ir.FunctionType(i32, [ptr]), name=sym)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    whole = b.alloca(ir.ArrayType(i64, 16))
    slots = b.bitcast(whole, ptr)
    for k in range(14):
        x = b.load(gep(b, f.args[0], 8 * k), typ=i64)
        b.store(x, b.bitcast(gep(b, slots, 8 * k), ir.PointerType(i64)))
    b.store(ir.Constant(i64, 0), b.bitcast(gep(b, slots, 8 * 14), ir.PointerType(i64)))
    rows = b.load(gep(b, f.args[0], 8 * 9), typ=i64)
    b.store(rows, b.bitcast(gep(b, slots, 8 * 15), ir.PointerType(i64)))
    b.ret(b.call(m.get_global("gemm_block"), [slots]))

    # B packed once (the operand of many products, a loop's weights): slots out, B as (data,
    # size), then K, N, trans_b; one block (K <= KC, N <= NC), panels as gemm_block packs them
    f = ir.Function(m, ir.FunctionType(i32, [ptr]), name=sym_pack)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    L = _Builder(b)
    out, out_size, src, src_size = (b.load(gep(b, f.args[0], 8 * k), typ=t) for k, t in enumerate((ptr, i64, ptr, i64)))
    K, N, trans = (b.load(gep(b, f.args[0], 8 * k), typ=i64) for k in (4, 5, 6))
    padded = b.mul(K, b.mul(b.sdiv(b.add(N, L.const(NR - 1)), L.const(NR)), L.const(NR)))
    ok = b.and_(b.icmp_signed("==", out_size, padded), b.icmp_signed("==", src_size, b.mul(K, N)))
    ok = b.and_(ok, b.and_(b.icmp_signed("<=", K, L.const(KC)), b.icmp_signed("<=", N, L.const(NC))))
    with b.if_then(b.not_(ok)):
        b.ret(ir.Constant(i32, 1))
    with b.if_else(b.icmp_signed("!=", trans, L.const(0))) as (cols, rows):
        with cols:
            b.call(pbs[1], [src, L.const(1), K, K, N, out])
        with rows:
            b.call(pbs[0], [src, N, L.const(1), K, N, out])
    b.ret(ir.Constant(i32, 0))
    from .workers import AVAILABLE, dispatch_ir

    if not AVAILABLE:  # no worker threads on this platform: these entries are never called
        return str(m) + "".join(f"define i32 @{s}(ptr %s) {{\n  ret i32 1\n}}\n" for s in (sym_par, sym_post, sym_join))
    memcpy = "declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)\n"
    return str(m) + dispatch_ir() + memcpy + _parallel_ir(profile, sym, sym_par) + _async_ir(sym_post, sym_join)


def _async_ir(sym_post, sym_join):
    """``i32 sym_post(i64 *s)``: posts ``gemm_block`` on the ``s[2]`` blocks of 16 slots at
    ``s[1]`` (each a whole product: C, A, B and workspace as (data, size), then N, M, K, flags,
    lo, hi, r0, r1) to the workers whose state words are at ``s[0]``, and returns at once: 1,
    or 0 where the pool was busy and this thread ran them (:func:`funcgrad.jit.workers.dispatch_ir`).
    ``i32 sym_join(i64 *s)``: waits for the posted blocks (``s[0]`` the state, ``s[1]`` their
    number), running those no worker has taken."""
    return f"""
define i32 @{sym_post}(ptr %s) optsize {{
entry:
  %S = load ptr, ptr %s
  %pb = getelementptr i64, ptr %s, i64 1
  %blocks = load ptr, ptr %pb
  %pn = getelementptr i64, ptr %s, i64 2
  %n = load i64, ptr %pn
  %r = call i32 @funcgrad_pool_post(ptr %S, ptr @gemm_block, ptr %blocks, i64 %n, i64 128)
  ret i32 %r
}}

define i32 @{sym_join}(ptr %s) optsize {{
entry:
  %S = load ptr, ptr %s
  %pn = getelementptr i64, ptr %s, i64 1
  %n = load i64, ptr %pn
  call void @funcgrad_pool_join(ptr %S, i64 %n)
  ret i32 0
}}
"""


def _parallel_ir(profile, sym, sym_par):
    """``i32 sym_par(i64 *slots)``: slots as ``sym``'s with the workers' job words (an int64
    array, :mod:`funcgrad.jit.workers`) after the workspace. Columns ``[lo, hi)`` are cut into
    one part per thread (whole NR panels), or, when C has a single panel, its rows into parts of
    8-row strips; each part has its own slice of the workspace."""
    ws, nr = profile.workspace, profile.nr
    return f"""
define i32 @{sym_par}(ptr %s) optsize minsize {{
entry:
  %pW = getelementptr i64, ptr %s, i64 6
  %W = load i64, ptr %pW
  %pWn = getelementptr i64, ptr %s, i64 7
  %Wn = load i64, ptr %pWn
  %pS = getelementptr i64, ptr %s, i64 8
  %S = load ptr, ptr %pS
  %pSn = getelementptr i64, ptr %s, i64 9
  %Sn = load i64, ptr %pSn
  %plo = getelementptr i64, ptr %s, i64 14
  %lo = load i64, ptr %plo
  %phi = getelementptr i64, ptr %s, i64 15
  %hi = load i64, ptr %phi
  %pcount = getelementptr i64, ptr %S, i64 9
  %workers = load i64, ptr %pcount
  %Sok0 = icmp sge i64 %Sn, {WORKER_WORDS}
  ; the array sizes, checked here: the blocks' return codes are not collected
  %pCn = getelementptr i64, ptr %s, i64 1
  %Cn = load i64, ptr %pCn
  %pAn = getelementptr i64, ptr %s, i64 3
  %An = load i64, ptr %pAn
  %pBn = getelementptr i64, ptr %s, i64 5
  %Bn = load i64, ptr %pBn
  %pN = getelementptr i64, ptr %s, i64 10
  %N = load i64, ptr %pN
  %pM = getelementptr i64, ptr %s, i64 11
  %M = load i64, ptr %pM
  %pK = getelementptr i64, ptr %s, i64 12
  %K = load i64, ptr %pK
  %MN = mul i64 %M, %N
  %MK = mul i64 %M, %K
  %KN = mul i64 %K, %N
  %okC = icmp eq i64 %Cn, %MN
  %okA = icmp eq i64 %An, %MK
  %okB = icmp eq i64 %Bn, %KN
  %okCA = and i1 %okC, %okA
  %okCAB = and i1 %okCA, %okB
  %Sok = and i1 %Sok0, %okCAB
  %cols = sub i64 %hi, %lo
  %cols1 = add i64 %cols, {nr - 1}
  %panels = sdiv i64 %cols1, {nr}
  ; parts of whole NR-column panels when there are two or more, else of ROW_STRIP-row strips
  %bycols = icmp sge i64 %panels, 2
  %M7 = add i64 %M, {ROW_STRIP - 1}
  %strips = sdiv i64 %M7, {ROW_STRIP}
  %units = select i1 %bycols, i64 %panels, i64 %strips
  %t0 = add i64 %workers, 1
  %c0 = icmp slt i64 %t0, %units
  %t1 = select i1 %c0, i64 %t0, i64 %units
  %room = sdiv i64 %Wn, {ws}
  %c1 = icmp slt i64 %t1, %room
  %t2 = select i1 %c1, i64 %t1, i64 %room
  %t2ok = icmp sge i64 %t2, 1
  %fine = and i1 %t2ok, %Sok
  br i1 %fine, label %split, label %bad

bad:
  ret i32 1

split:
  ; whole units per part, then the number of parts that leaves
  %pp0 = add i64 %units, %t2
  %pp1 = sub i64 %pp0, 1
  %per_units = sdiv i64 %pp1, %t2
  %per_cols = mul i64 %per_units, {nr}
  %per_rows = mul i64 %per_units, {ROW_STRIP}
  %nb0 = add i64 %units, %per_units
  %nb1 = sub i64 %nb0, 1
  %nb = sdiv i64 %nb1, %per_units
  %blocks = alloca [16 x i64], i64 %nb, align 8
  br label %fill

fill:
  %j = phi i64 [0, %split], [%j1, %fill]
  %jb = mul i64 %j, 16
  %blk = getelementptr i64, ptr %blocks, i64 %jb
  call void @llvm.memcpy.p0.p0.i64(ptr %blk, ptr %s, i64 48, i1 false)
  %woff = mul i64 %j, {ws * profile.dtype.itemsize}
  %wj = add i64 %W, %woff
{ir_stores("blk", [(6, "i64", "%wj"), (7, "i64", ws)], "b")}
  %src = getelementptr i64, ptr %s, i64 10
  %b8 = getelementptr i64, ptr %blk, i64 8
  call void @llvm.memcpy.p0.p0.i64(ptr %b8, ptr %src, i64 32, i1 false)
  ; columns [lj, hj) and rows [rj, sj)
  %jcols = mul i64 %j, %per_cols
  %lj0 = add i64 %lo, %jcols
  %hj0 = add i64 %lj0, %per_cols
  %ch = icmp slt i64 %hj0, %hi
  %hj1 = select i1 %ch, i64 %hj0, i64 %hi
  %lj = select i1 %bycols, i64 %lj0, i64 %lo
  %hj = select i1 %bycols, i64 %hj1, i64 %hi
  %rj0 = mul i64 %j, %per_rows
  %sj0 = add i64 %rj0, %per_rows
  %cr = icmp slt i64 %sj0, %M
  %sj1 = select i1 %cr, i64 %sj0, i64 %M
  %rj = select i1 %bycols, i64 0, i64 %rj0
  %sj = select i1 %bycols, i64 %M, i64 %sj1
{ir_stores("blk", [(12, "i64", "%lj"), (13, "i64", "%hj"), (14, "i64", "%rj"), (15, "i64", "%sj")], "b")}
  %j1 = add i64 %j, 1
  %fmore = icmp slt i64 %j1, %nb
  br i1 %fmore, label %fill, label %go

go:
  call void @funcgrad_pool_run(ptr %S, ptr @gemm_block, ptr %blocks, i64 %nb, i64 128)
  ret i32 0
}}
"""


# -- compiled products, per (dtype, transposes) -----------------------------------------------------

_lock = threading.Lock()


def _after_fork_in_child():
    """A child forked while another thread held the lock (a background compile) would wait for it
    forever: it gets a fresh one (and builds what was being built again)."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_products = {}  # dtype -> Product, or None (unavailable)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_profiles = {}
_local = threading.local()


def profile(dtype):
    """The register blocking for ``dtype`` on this host."""
    p = _profiles.get(dtype)
    if p is None:
        p = _profiles[dtype] = Profile(dtype, _host_flags())
    return p


def _signature(dtype, parallel):
    from . import native

    arrays = [("out", dtype, 2), ("in", dtype, 2), ("in", dtype, 2), ("out", dtype, 1)]
    if parallel:
        arrays.append(("out", np.int64, 1))
    return native.Signature(arrays, [], 4)


class Product:
    """The compiled products for one dtype: ``serial`` and ``parallel`` (split among the
    workers) kernels, the raw entry points for numba code, the register blocking and the
    worker pool. The object code is compiled or loaded at construction (possibly on a
    background thread, :func:`prepare`); the callables and the workers are made on first use,
    when the kernels' trampoline is in place."""

    def __init__(self, dtype):
        from . import kernels, native

        self.profile = prof = profile(dtype)
        self.dtype = dtype
        key = f"gemm_{dtype.name}_{prof.lanes}x{prof.mr}"
        here = os.path.dirname(os.path.abspath(__file__))
        sources = [__file__, os.path.join(here, "workers.py")]
        self.entries = native.cached_entries(
            key,
            sources,
            lambda syms: _module(prof, *syms),
            ["gemm", "gemm_par", "gemm_post", "gemm_join", "gemm_pack"],
            kernels._cache_dirs(),
            optimize=False,
        )
        # the raw entry points ``i32 (i64 *slots)``, for numba code (funcgrad.jit.loops)
        entry_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
        self.entry_pointers = tuple(entry_type(e) for e in self.entries)
        self._callables = None
        if workers.AVAILABLE and kernels.num_threads() > 1:
            try:
                workers.worker_entry()  # the workers' code too, while we are off the critical path
            except native.LoadError:
                pass

    def _make_callables(self):
        from . import kernels, native

        with _lock:
            if self._callables is None:
                dirs = kernels._cache_dirs()
                name = f"gemm_{self.dtype.name}"
                serial = native.function(self.entries[0], _signature(self.dtype, False), name, dirs)
                parallel = native.function(self.entries[1], _signature(self.dtype, True), name + "_parallel", dirs)
                self._callables = (serial, parallel)
        return self._callables

    @property
    def serial(self):
        return (self._callables or self._make_callables())[0]

    @property
    def parallel(self):
        return (self._callables or self._make_callables())[1]

    @property
    def pool(self):
        """The worker pool (looked up each time: a forked child makes its own)."""
        return workers.pool()


def product(dtype):
    """The compiled products for ``dtype`` (None where native code is off or fails to load)."""
    prod = _products.get(dtype, False)
    if prod is False:
        with _lock:
            prod = _products.get(dtype, False)
            if prod is False:
                try:
                    prod = Product(np.dtype(dtype)) if _native_ok() else None
                except Exception as e:  # noqa: BLE001 - any compile/load failure: np.dot instead
                    logger.warning("funcgrad.jit.gemm: compiled products are off (%s: %s)", type(e).__name__, e)
                    prod = None
                _products[dtype] = prod
    return prod


def wanted(dtype, m, k, n):
    """Whether the compiled product is the one to run an ``(m, k) @ (k, n)`` product of
    ``dtype``: not other dtypes, not products too small for packing to pay (``MIN_WORK``), not
    narrow ones (fewer than NR/2 columns: most vector lanes would idle; NumPy's BLAS measures
    faster), not with native code off. The one rule for jitted code, its loops and its
    compile-ahead (which must not build the product just to ask)."""
    return ENABLED and dtype in _FLOATS and m * n * k >= MIN_WORK and n >= profile(dtype).nr // 2


def takes(dtype, m, k, n):
    """The compiled product for an ``(m, k) @ (k, n)`` product of ``dtype`` (built on first
    need), or None where ``np.dot`` runs it (:func:`wanted`, or no native code)."""
    if not wanted(dtype, m, k, n):
        return None
    prod = _products.get(dtype, False)
    return product(dtype) if prod is False else prod


def splits(m, k, n, nr):
    """Whether an ``(m, k) @ (k, n)`` product is split among the workers: enough work, and two
    column panels (of ``nr``) or two row strips to share (the same rule the loop helper emits)."""
    return m * n * k >= PARALLEL_WORK and max(n // nr, m // ROW_STRIP) >= 2


def matmul_serial(a, b, trans_a=False, trans_b=False):
    """:func:`matmul` on the calling thread only: for code whose other steps run BLAS's own
    threads (convolutions, batched products), which spin for a while after each call and would
    take the workers' cores (a split product then waits on a descheduled worker).

    Example::

        c = matmul_serial(x, w)
    """
    return matmul(a, b, trans_a, trans_b, False)


def prepare(dtypes):
    """Compile (or load) the products of ``dtypes`` on background threads, while the caller
    compiles other code; returns the threads to join. Used by the jit compiler when a function
    has matrix products large enough for :func:`matmul` to use them."""
    threads = []
    for dt in dict.fromkeys(np.dtype(d) for d in dtypes if d in _FLOATS):
        if not ENABLED or dt in _products:
            continue

        t = threading.Thread(target=product, args=(dt,), name="funcgrad-gemm-compile", daemon=True)
        t.start()
        threads.append(t)
    return threads


def _native_ok():
    from . import native

    return native.runtime() is not None


def _workspace(prof, parts):
    """This thread's workspace for ``parts`` threads' packing buffers."""
    ws = getattr(_local, "ws", None)
    if ws is None:
        ws = _local.ws = {}
    buf = ws.get(prof.dtype)
    if buf is None or buf.size < parts * prof.workspace:
        buf = ws[prof.dtype] = np.empty(parts * prof.workspace, prof.dtype)
    return buf


def matmul(a, b, trans_a=False, trans_b=False, parallel=True):
    """``op(a) @ op(b)`` for 2-D float32/float64 arrays, ``op`` transposing where asked;
    ``parallel=False`` keeps it on the calling thread.

    Example::

        c = matmul(x, w)            # x @ w
        g = matmul(x, dy, True)     # x.T @ dy, reading x in place
    """
    A = a.T if trans_a else a
    B = b.T if trans_b else b
    M, K = A.shape
    N = B.shape[1]
    dt = a.dtype
    prod = None
    if b.dtype == dt and K == B.shape[0] and a.flags.c_contiguous and b.flags.c_contiguous:
        prod = takes(dt, M, K, N)
    if prod is None:
        return np.dot(A, B)
    c = np.empty((M, N), dt)
    prof = prod.profile
    flags = 1 + trans_a + 2 * trans_b
    pool = workers.pool() if parallel and splits(M, K, N, prof.nr) else None
    if pool is None:
        prod.serial(c, a, b, _workspace(prof, 1), N, M, K, flags, 0, N)
    else:
        prod.parallel(c, a, b, _workspace(prof, pool.count + 1), pool.state, N, M, K, flags, 0, N)
    return c

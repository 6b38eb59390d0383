"""Native worker threads for splitting one compiled call (a matrix product) across cores.

A Python thread pool takes tens of microseconds to wake a sleeping worker (measured: a
``ThreadPoolExecutor`` round trip of ~70 us on a 2-core machine), as long as a whole 128x256x128
product. BLAS libraries and XLA keep their workers spinning for a while after each job; this
module does the same in native code:

* each worker is a Python daemon thread that calls :func:`worker_ir`'s loop once and stays in
  it, without the GIL. It spins on the job sequence word (with ``pause``) for ``SPIN`` rounds
  after each job, then sleeps on it with a futex until the next job;
* :func:`rest` asks spinning workers to sleep now: jitted code calls it before a step that
  runs threads of its own (a compiled loop calling BLAS, a parallel kernel), which spinning
  workers would slow down on a machine with few cores;
* :func:`dispatch_ir` is the caller's side, linked into the modules that use the pool (the
  GEMM). A job is ``nblocks`` argument blocks for one entry point. The caller publishes it and
  then, like every worker, claims blocks one at a time (an atomic compare-and-swap on the claim
  word) and runs them, until none is left; then it waits for the blocks others claimed. A
  worker that wakes late, or is descheduled by the OS (another library's threads spinning on
  the same cores), finds nothing left to claim instead of holding the caller up. A caller that
  finds the pool busy (another Python thread is using it) runs all blocks itself. A job can
  also be posted and joined later (the caller goes on with other work meanwhile): a compiled
  loop accumulates its weight-gradient products on a worker while it runs the next steps.

Words (int64) of ``state``: line 0 (words 0-7) is the job: ``[0]`` the claim word (generation
<< 40 | nblocks << 20 | next block), ``[1]`` blocks finished, ``[2]`` entry point, ``[3]`` first
block, ``[4]`` bytes between blocks, ``[5]`` sleeping workers, ``[6]`` the job sequence number
(low 32 bits: the futex word), ``[7]`` busy. Line 1: ``[8]`` quit, ``[9]`` the number of workers,
``[10]`` rest (set by :func:`rest`, cleared by the next job).

Linux x86-64 only (futex, ``pause``, the native loader); elsewhere :func:`pool` is None and
callers run single-threaded. A forked child starts with no workers and makes new ones.
"""

from __future__ import annotations

import os
import platform
import sys
import threading

import numpy as np

WORDS = 16  # int64 words of the job state (two cache lines)
SPIN = 1 << 12  # pause rounds before a worker sleeps (~0.3 ms here: as fast as 2 ms on the jit benchmarks)
_SYS_FUTEX = 202
_FUTEX_WAIT, _FUTEX_WAKE = 128, 129  # the _PRIVATE variants

AVAILABLE = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")

# Claiming and running blocks: shared by the caller and the workers. %st is the state, %gen the
# job's generation; falls through to label %{done}.
_CLAIM = """
  br label %{p}.claim

{p}.claim:
  %{p}.w = load atomic i64, ptr %st acquire, align 8
  %{p}.g = lshr i64 %{p}.w, 40
  %{p}.n = lshr i64 %{p}.w, 20
  %{p}.nb = and i64 %{p}.n, 1048575
  %{p}.j = and i64 %{p}.w, 1048575
  %{p}.same = icmp eq i64 %{p}.g, %gen
  %{p}.left = icmp slt i64 %{p}.j, %{p}.nb
  %{p}.ok = and i1 %{p}.same, %{p}.left
  br i1 %{p}.ok, label %{p}.take, label %{done}

{p}.take:
  %{p}.w1 = add i64 %{p}.w, 1
  %{p}.x = cmpxchg ptr %st, i64 %{p}.w, i64 %{p}.w1 acq_rel acquire
  %{p}.won = extractvalue {{ i64, i1 }} %{p}.x, 1
  br i1 %{p}.won, label %{p}.run, label %{p}.claim

{p}.run:
  %{p}.pfn = getelementptr i64, ptr %st, i64 2
  %{p}.fn = load atomic ptr, ptr %{p}.pfn monotonic, align 8
  %{p}.pb = getelementptr i64, ptr %st, i64 3
  %{p}.b0 = load atomic ptr, ptr %{p}.pb monotonic, align 8
  %{p}.ps = getelementptr i64, ptr %st, i64 4
  %{p}.stride = load atomic i64, ptr %{p}.ps monotonic, align 8
  %{p}.off = mul i64 %{p}.j, %{p}.stride
  %{p}.blk = getelementptr i8, ptr %{p}.b0, i64 %{p}.off
  %{p}.rc = call i32 %{p}.fn(ptr %{p}.blk)
  %{p}.pfin = getelementptr i64, ptr %st, i64 1
  %{p}.f = atomicrmw add ptr %{p}.pfin, i64 1 acq_rel
  br label %{p}.claim
"""


def ir_stores(base, words, prefix):
    """LLVM IR lines storing ``(index, type, value)`` words into the int64 array at ``%base``
    (the addresses named ``%<prefix><index>``): filling job words and argument blocks."""
    return "\n".join(
        f"  %{prefix}{k} = getelementptr i64, ptr %{base}, i64 {k}\n  store {t} {v}, ptr %{prefix}{k}"
        for k, t, v in words
    )


def worker_ir(sym):
    """IR module of the worker loop ``i32 sym(i64 *slots)`` in the trampoline's convention: one
    array (the pool's state words), one size and ``lo``, ``hi`` (unused: chosen by the caller
    so the trampoline releases the GIL). Returns when the quit word is set."""
    claim = _CLAIM.format(p="c", done="idle")
    return f"""
declare i64 @syscall(i64, ...)
declare void @llvm.x86.sse2.pause()

define i32 @{sym}(ptr %slots) {{
entry:
  %st = load ptr, ptr %slots
  %pseq = getelementptr i64, ptr %st, i64 6
  %psleep = getelementptr i64, ptr %st, i64 5
  %pquit = getelementptr i64, ptr %st, i64 8
  %prest = getelementptr i64, ptr %st, i64 10
  %first = load atomic i32, ptr %pseq acquire, align 8
  br label %idle

idle:
  %last = phi i32 [%first, %entry], [%gen32, %c.claim], [%last, %woke]
  br label %spin

spin:
  %n = phi i64 [0, %idle], [%n1, %again]
  %s = load atomic i32, ptr %pseq acquire, align 8
  %new = icmp ne i32 %s, %last
  br i1 %new, label %job, label %check

check:
  %q = load atomic i64, ptr %pquit acquire, align 8
  %quit = icmp ne i64 %q, 0
  br i1 %quit, label %exit, label %count

count:
  %n1 = add i64 %n, 1
  %more = icmp slt i64 %n1, {SPIN}
  %rs = load atomic i64, ptr %prest monotonic, align 8
  %awake = icmp eq i64 %rs, 0
  %spinning = and i1 %more, %awake
  br i1 %spinning, label %again, label %sleep

again:
  call void @llvm.x86.sse2.pause()
  br label %spin

sleep:
  %sl0 = atomicrmw add ptr %psleep, i64 1 seq_cst
  %s2 = load atomic i32, ptr %pseq seq_cst, align 8
  %still = icmp eq i32 %s2, %last
  br i1 %still, label %wait, label %woke

wait:
  %last64 = zext i32 %last to i64
  %r = call i64 (i64, ...) @syscall(i64 {_SYS_FUTEX}, ptr %pseq, i64 {_FUTEX_WAIT}, i64 %last64, ptr null)
  br label %woke

woke:
  %sl1 = atomicrmw sub ptr %psleep, i64 1 seq_cst
  br label %idle

job:
  %gen32 = phi i32 [%s, %spin]
  %gen = zext i32 %gen32 to i64
{claim}

exit:
  ret i32 0
}}
"""


def dispatch_ir():
    """IR text of the caller's side, three internal functions:

    * ``i32 @funcgrad_pool_post(ptr state, ptr fn, ptr blocks, i64 nblocks, i64 stride)``
      publishes the job ``fn`` on the blocks at ``blocks + j * stride`` (bytes), wakes sleeping
      workers and returns 1 without running any block itself; the job then holds the pool until
      :func:`funcgrad_pool_join`. Where the pool is busy it runs every block on this thread and
      returns 0 (nothing to join). The blocks must stay in place until the join.
    * ``void @funcgrad_pool_join(ptr state, i64 nblocks)``: claims and runs the blocks no worker
      has taken, waits for the others, frees the pool.
    * ``void @funcgrad_pool_run(...)`` (post's arguments): both, so this thread works too."""
    claim = _CLAIM.format(p="m", done="wait")
    serial = _CLAIM.format(p="s", done="out").replace("%st", "%local")
    words = [(0, "i64", "%nbs"), (1, "i64", 0), (2, "ptr", "%fn"), (3, "ptr", "%blocks"), (4, "i64", "%stride")]
    local_job = ir_stores("local", words, "l")
    return f"""
declare i64 @syscall(i64, ...)
declare void @llvm.x86.sse2.pause()

define internal i32 @funcgrad_pool_post(ptr %state, ptr %fn, ptr %blocks, i64 %nblocks, i64 %stride) optsize {{
entry:
  %pbusy = getelementptr i64, ptr %state, i64 7
  %got = cmpxchg ptr %pbusy, i64 0, i64 1 acquire monotonic
  %free = extractvalue {{ i64, i1 }} %got, 1
  %nbs = shl i64 %nblocks, 20
  br i1 %free, label %post, label %alone

alone:
  ; the pool is busy: the same claim loop over a private copy of the job words
  %local = alloca [8 x i64], align 8
{local_job}
  br label %alone.go

alone.go:
  %gen = add i64 0, 0
{serial}

out:
  ret i32 0

post:
  %st = phi ptr [%state, %entry]
  %pseq = getelementptr i64, ptr %st, i64 6
  %old = load atomic i32, ptr %pseq monotonic, align 8
  %gen32 = add i32 %old, 1
  %gen1 = zext i32 %gen32 to i64
  %gsh = shl i64 %gen1, 40
  %word = or i64 %gsh, %nbs
  %pfn = getelementptr i64, ptr %st, i64 2
  store atomic ptr %fn, ptr %pfn monotonic, align 8
  %pb = getelementptr i64, ptr %st, i64 3
  store atomic ptr %blocks, ptr %pb monotonic, align 8
  %ps = getelementptr i64, ptr %st, i64 4
  store atomic i64 %stride, ptr %ps monotonic, align 8
  %pfin = getelementptr i64, ptr %st, i64 1
  store atomic i64 0, ptr %pfin monotonic, align 8
  store atomic i64 %word, ptr %st release, align 8
  %prest = getelementptr i64, ptr %st, i64 10
  store atomic i64 0, ptr %prest monotonic, align 8
  store atomic i32 %gen32, ptr %pseq seq_cst, align 8
  %psleep = getelementptr i64, ptr %st, i64 5
  %sl = load atomic i64, ptr %psleep seq_cst, align 8
  %asleep = icmp ne i64 %sl, 0
  br i1 %asleep, label %wake, label %posted

wake:
  %rw = call i64 (i64, ...) @syscall(i64 {_SYS_FUTEX}, ptr %pseq, i64 {_FUTEX_WAKE}, i64 2147483647)
  br label %posted

posted:
  ret i32 1
}}

define internal void @funcgrad_pool_join(ptr %st, i64 %nblocks) optsize {{
entry:
  %w0 = load atomic i64, ptr %st acquire, align 8
  %gen = lshr i64 %w0, 40
{claim}

wait:
  %pfin = getelementptr i64, ptr %st, i64 1
  %d = load atomic i64, ptr %pfin acquire, align 8
  %all = icmp sge i64 %d, %nblocks
  br i1 %all, label %release, label %pause

pause:
  call void @llvm.x86.sse2.pause()
  br label %wait

release:
  %pbusy = getelementptr i64, ptr %st, i64 7
  store atomic i64 0, ptr %pbusy release, align 8
  ret void
}}

define internal void @funcgrad_pool_run(ptr %state, ptr %fn, ptr %blocks, i64 %nblocks, i64 %stride) optsize {{
entry:
  %posted = call i32 @funcgrad_pool_post(ptr %state, ptr %fn, ptr %blocks, i64 %nblocks, i64 %stride)
  %join = icmp ne i32 %posted, 0
  br i1 %join, label %mine, label %out

mine:
  call void @funcgrad_pool_join(ptr %state, i64 %nblocks)
  br label %out

out:
  ret void
}}
"""


class Pool:
    """The process's worker threads and their shared state words."""

    def __init__(self, count, worker_fn):
        self.count = count
        raw = np.zeros(WORDS + 8, np.int64)
        start = (-raw.ctypes.data % 64) // 8  # cache-line aligned
        self.state = raw[start : start + WORDS]
        self.state[9] = count
        self.threads = []
        for w in range(count):
            t = threading.Thread(
                target=worker_fn, args=(self.state, 1 << 40, 0, 1 << 40), daemon=True, name=f"funcgrad-worker-{w}"
            )
            t.start()
            self.threads.append(t)


_pool = None
_pool_lock = threading.Lock()


def _after_fork_in_child():
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # the loaded code (_entry) is still mapped


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def rest():
    """Spinning workers go to sleep now instead of after ``SPIN`` rounds (until the next job).

    Example::

        workers.rest()  # before running code with threads of its own
    """
    p = _pool
    if p is not None:
        p.state[10] = 1


def pool():
    """The worker pool (``num_threads() - 1`` workers, started on first use), or None where
    there is none (one thread, another platform, native code off)."""
    global _pool
    if _pool is not None or not AVAILABLE:
        return _pool
    from . import native
    from .kernels import num_threads

    count = num_threads() - 1
    if count < 1 or native.runtime() is None:
        return None
    with _pool_lock:
        if _pool is None:
            fn = _worker_function()
            if fn is not None:
                _pool = Pool(count, fn)
    return _pool


_entry = None


def worker_entry():
    """The address of the worker loop's machine code, compiled or loaded once per process (the
    GEMM's background compile calls this early, so the first parallel product does not wait)."""
    global _entry
    if _entry is None:
        from . import kernels, native

        (_entry,) = native.cached_entries(
            "workers", [__file__], lambda syms: worker_ir(syms[0]), ["worker"], kernels._cache_dirs(), optimize=False
        )
    return _entry


def _worker_function():
    from . import kernels, native

    sig = native.Signature([("out", "int64", 1)], [], 1)
    try:
        entry = worker_entry()
    except native.LoadError:
        return None
    return native.function(entry, sig, "funcgrad worker", kernels._cache_dirs())

"""Native kernels: fused kernels as machine code, compiled with llvmlite and loaded without numba.

:mod:`funcgrad.jit.llvmgen` compiles a kernel's numba source to LLVM IR, with an entry point
``i32 entry(i64 *slots)`` that reads the kernel's arguments from an array of slots.
:func:`compile_object` optimises and assembles it with llvmlite using numba's settings (host
CPU and features, ``-O3`` with the loop vectorizer and without the SLP vectorizer, static
relocations, the JIT code model), so a kernel computes what its numba twin computes; the
kernels of a batch compile on several threads (:class:`_LockBypass`). Each kernel is then a
builtin function object, ``kernel(outs..., array_ins..., scalar_ins..., sizes..., lo, hi)``,
the calling convention of the numba dispatchers it replaces: one shared *trampoline* (a CPython
``METH_FASTCALL`` function written in IR, compiled once and cached like a kernel) bound to a
per-kernel descriptor (:func:`describe`: the entry point and what each argument must be).

The trampoline reads the arguments straight from the objects: for each array it checks the type
(``ndarray``), dtype (type number and byte order), number of dimensions and flags
(C-contiguous, aligned, writeable for outputs) and fills in the data pointer and size; a numpy
scalar must be of the exact scalar type of its dtype; sizes are Python integers. Anything else
raises ``TypeError``, as a numba dispatcher that may not compile does (the executor then calls
:func:`funcgrad.jit.kernels.call_retyped`); chunk bounds outside the outer loop and arrays of
sizes other than the loops' raise ``ValueError``. Calls with much work release the GIL, so the
thread pool of :func:`funcgrad.jit.kernels.parallel_call` runs chunks in parallel. The object
layouts (field offsets of ``ndarray``, ``dtype``, ``bytes`` and numpy scalars) are verified
through ctypes on live objects when the runtime starts; where they differ, native kernels are
off and numba compiles every kernel.

Loading needs neither numba nor llvmlite on Linux x86-64: the object file (ELF; in the JIT code
model every relocation is a 64-bit absolute address) is copied into fresh pages, relocated
against the process's symbols (the Python C API, libm) and numpy's type objects, and made
executable. Elsewhere llvmlite's MCJIT loads it. So a process whose kernels are all on disk
imports no compiler at all. Where the process may not map code, native kernels turn off.

Object files are cached as ``$FUNCGRAD_CACHE_DIR/funcgrad_kernel_<key>.<tag>.o`` (and the
trampoline as ``funcgrad_trampoline.<tag>.o``): ``key`` is the kernel's structural hash, ``tag``
hashes everything else the code depends on (the argument dtypes, this module and llvmgen.py,
the llvmlite version, the host CPU, the Python and NumPy versions, the object layouts). Each
file carries a SHA-256 of its code, checked before loading (a damaged file is compiled again),
and is written to a temporary name and renamed into place, so concurrent processes only ever
read complete files. ``FUNCGRAD_JIT_NATIVE=0`` turns native kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import struct
import sys
import tempfile
import threading

import numpy as np

ENABLED = os.environ.get("FUNCGRAD_JIT_NATIVE", "1") != "0"

# Iteration-space elements from which a call releases the GIL (below, the release costs more
# than other threads gain).
GIL_RELEASE_WORK = 1 << 14

NUMBERS = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")

_METH_FASTCALL = 0x0080
C_CONTIGUOUS, ALIGNED, WRITEABLE = 0x1, 0x100, 0x400
_HERE = os.path.dirname(os.path.abspath(__file__))


class _MethodDef(ctypes.Structure):
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


def _layout():
    """Field offsets the trampoline reads, verified on live objects (None when they differ)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8 or sys.byteorder != "little":
        return None
    hdr = object.__basicsize__
    lay = {
        "type": hdr - 8,  # ob_type ends PyObject_HEAD
        "data": hdr,
        "nd": hdr + 8,
        "dims": hdr + 16,
        "descr": hdr + 40,
        "flags": hdr + 48,
        "byteorder": hdr + 10,
        "type_num": hdr + 12,
        "scalar": hdr,
        "bytes": bytes.__basicsize__ - 1,  # PyBytesObject.ob_sval
    }
    try:
        a = np.arange(6, dtype=np.float32).reshape(2, 3)

        def rd(t, off, obj):
            return t.from_address(id(obj) + off).value

        if rd(ctypes.c_void_p, lay["type"], a) != id(np.ndarray):
            return None
        if rd(ctypes.c_void_p, lay["data"], a) != a.ctypes.data or rd(ctypes.c_int, lay["nd"], a) != 2:
            return None
        dims = rd(ctypes.c_void_p, lay["dims"], a)
        if [ctypes.c_ssize_t.from_address(dims + 8 * i).value for i in range(2)] != [2, 3]:
            return None
        if rd(ctypes.c_void_p, lay["descr"], a) != id(a.dtype) or rd(ctypes.c_int, lay["flags"], a) != a.flags.num:
            return None
        for dt in NUMBERS:
            d = np.dtype(dt)
            if (
                rd(ctypes.c_int, lay["type_num"], d) != d.num
                or rd(ctypes.c_char, lay["byteorder"], d) != d.byteorder.encode()
            ):
                return None
        checks = [
            (np.float32(1.5), ctypes.c_float, 1.5),
            (np.float64(-2.25), ctypes.c_double, -2.25),
            (np.int8(-7), ctypes.c_int8, -7),
            (np.int16(-300), ctypes.c_int16, -300),
            (np.int32(-70000), ctypes.c_int32, -70000),
            (np.int64(-(1 << 40)), ctypes.c_int64, -(1 << 40)),
            (np.uint8(200), ctypes.c_uint8, 200),
            (np.uint16(60000), ctypes.c_uint16, 60000),
            (np.uint32(4000000000), ctypes.c_uint32, 4000000000),
            (np.uint64(1 << 63), ctypes.c_uint64, 1 << 63),
            (np.bool_(True), ctypes.c_uint8, 1),
        ]
        for obj, t, want in checks:
            if rd(t, lay["scalar"], obj) != want or rd(ctypes.c_void_p, lay["type"], obj) != id(type(obj)):
                return None
        b = b"funcgrad\x00\x01"
        if ctypes.string_at(id(b) + lay["bytes"], len(b)) != b:
            return None
    except Exception:  # pragma: no cover - an unusual interpreter
        return None
    return lay


def _host_fingerprint():
    """What identifies the host CPU for the object cache, cheaply (the compiler is not loaded
    just to find out): /proc/cpuinfo's identity and feature flags on Linux, else llvmlite's
    host CPU name and features."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read().split("\n\n", 1)[0]
        keep = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags", "Features", "CPU part")
        lines = sorted(ln for ln in text.splitlines() if ln.split(":")[0].strip() in keep)
        if any(ln.startswith(("flags", "Features")) for ln in lines):
            return platform.machine() + "\n" + "\n".join(lines)
    except OSError:
        pass
    import llvmlite.binding as llvm

    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def _symbol_resolver():
    pyapi, proc = ctypes.pythonapi, ctypes.CDLL(None)
    types_ = {"funcgrad_type_ndarray": id(np.ndarray)}
    for t in NUMBERS:
        types_[f"funcgrad_type_{t}"] = id(np.dtype(t).type)
    cache = {}

    def resolve(name):
        addr = cache.get(name)
        if addr is None:
            addr = types_.get(name)
            for lib in (pyapi, proc):
                if addr is not None:
                    break
                try:
                    addr = ctypes.addressof(ctypes.c_char.in_dll(lib, name))
                except ValueError:
                    pass
            if addr is None:
                raise LoadError(f"undefined symbol {name}")
            cache[name] = addr
        return addr

    return resolve, types_


# What object code may refer to outside itself: the trampoline's Python C API, and the C
# library functions LLVM may call from kernels (libm for float64 math, frem, pow, memset...).
_EXTERNAL_SYMBOLS = (
    "PyLong_AsLongLong",
    "PyErr_Occurred",
    "PyErr_Format",
    "Py_IncRef",
    "PyEval_SaveThread",
    "PyEval_RestoreThread",
    "PyExc_TypeError",
    "PyExc_ValueError",
    "_Py_NoneStruct",
    "memset",
    "memcpy",
    "memmove",
    "syscall",
) + tuple(
    name + suffix
    for name in (
        "exp exp2 expm1 log log2 log10 log1p pow sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh "
        "atanh erf erfc lgamma tgamma sqrt cbrt fmod ldexp floor ceil rint trunc round nearbyint copysign hypot"
    ).split()
    for suffix in ("", "f")
)


class LoadError(Exception):
    """Object code this process cannot load."""


class Unsupported(Exception):
    """Kernel source outside the subset :mod:`funcgrad.jit.llvmgen` compiles (numba compiles it)."""


class _Runtime:
    """What native kernels need in every process: layouts, the cache tag, the loader."""

    def __init__(self):
        self.layout = _layout()
        if self.layout is None:
            raise RuntimeError("unexpected ndarray/scalar object layout")
        import llvmlite  # the package only (its version): the binding loads LLVM

        self.resolve, self.type_symbols = _symbol_resolver()
        self.new_function = ctypes.pythonapi.PyCFunction_NewEx
        self.new_function.restype = ctypes.py_object
        self.new_function.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
        self.keep = []  # method defs, names, memory, object files: kernels live as long as the process
        self.elf = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
        if self.elf:
            libc = ctypes.CDLL(None, use_errno=True)
            self.mmap, self.mprotect = libc.mmap, libc.mprotect
            self.mmap.restype = ctypes.c_void_p
            self.mmap.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            ]
            self.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self._compiler = None
        self._engine = None
        self._trampoline = None
        h = hashlib.sha256()
        for f in ("native.py", "llvmgen.py"):
            with open(os.path.join(_HERE, f), "rb") as fh:
                h.update(fh.read())
        h.update(_host_fingerprint().encode())
        h.update(
            repr(
                (
                    llvmlite.__version__,
                    sys.version_info[:2],
                    getattr(sys, "abiflags", ""),
                    np.__version__,
                    sorted(self.layout.items()),
                    GIL_RELEASE_WORK,
                )
            ).encode()
        )
        self.env_hash = h.hexdigest()

    # -- compiling (the cold path: imports llvmlite.binding) ---------------------------------------
    def compiler(self):
        if self._compiler is None:
            self._compiler = _Compiler()
        return self._compiler

    # -- loading -------------------------------------------------------------------------------------
    def trampoline_name(self):
        return f"funcgrad_trampoline.{self.env_hash[:16]}.o"

    def trampoline_cached(self, directories):
        """Load the trampoline from the disk cache; False when it is not there (or damaged)."""
        if self._trampoline is None:
            for d in directories:
                obj = read_object(os.path.join(d, self.trampoline_name()))
                if obj is not None:
                    try:
                        self._trampoline = self.load_symbol(obj, "funcgrad_trampoline")
                        break
                    except LoadError:
                        pass
        return self._trampoline is not None

    def trampoline_compile(self):
        """Object code of the trampoline (the cold path; hand-written IR: no passes, measured as
        fast per call as the optimised build, a quarter of its compile time)."""
        from . import llvmgen

        return self.compiler().compile(llvmgen.trampoline_ir(self.layout, GIL_RELEASE_WORK), optimize=False)

    def trampoline_install(self, obj, directories):
        for d in directories:
            try:
                write_atomic(os.path.join(d, self.trampoline_name()), obj)
                break
            except OSError:
                continue
        self._trampoline = self.load_symbol(obj, "funcgrad_trampoline")

    def trampoline(self, directories):
        """Address of the trampoline every kernel is called through (compiled once, cached on disk)."""
        if not self.trampoline_cached(directories):
            self.trampoline_install(self.trampoline_compile(), directories)
        return self._trampoline

    def load_symbol(self, obj, symbol):
        """Address of ``symbol`` once object code ``obj`` is loaded (raises :class:`LoadError`)."""
        return self.load_symbols(obj, [symbol])[0]

    def load_symbols(self, obj, symbols):
        """Addresses of ``symbols`` once object code ``obj`` is loaded (once for all of them)."""
        if self.elf:
            try:
                table = self._load_elf(obj)
            except (struct.error, ValueError, IndexError) as e:
                raise LoadError(f"malformed object code: {e}") from None
            missing = [s for s in symbols if not table.get(s)]
            if missing:
                raise LoadError(f"symbols {missing} not found in the object code")
            return [table[s] for s in symbols]
        first = self._load_mcjit(obj, symbols[0])
        return [first] + [self._engine.get_function_address(s) for s in symbols[1:]]

    def function(self, trampoline, entry, sig, name):
        """The builtin function object of a kernel: the trampoline with the kernel's descriptor."""
        cname = name.encode()
        md = _MethodDef(cname, trampoline, _METH_FASTCALL, None)
        self.keep.append((md, cname))
        return self.new_function(ctypes.addressof(md), describe(entry, sig, name), None)

    def _load_mcjit(self, obj, symbol):
        llvm = self.compiler().llvm
        if self._engine is None:
            self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.compiler().tm)
            for name, addr in self.type_symbols.items():
                llvm.add_symbol(name, addr)
            for name in _EXTERNAL_SYMBOLS:  # where MCJIT would not search the process itself
                try:
                    llvm.add_symbol(name, self.resolve(name))
                except LoadError:
                    pass
        ref = llvm.ObjectFileRef.from_data(obj)
        self._engine.add_object_file(ref)
        self._engine.finalize_object()
        self.keep.append(ref)
        addr = self._engine.get_function_address(symbol)
        if not addr:
            raise LoadError(f"symbol {symbol} not found in the kernel's object code")
        return addr

    def _load_elf(self, obj):
        """Map an x86-64 ELF relocatable object: allocated sections copied into fresh pages,
        relocations applied, code made executable. Returns its global symbols' addresses."""
        if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
            raise LoadError("not a little-endian ELF64 object")
        e_type, e_machine = struct.unpack_from("<HH", obj, 16)
        e_shoff = struct.unpack_from("<Q", obj, 40)[0]
        e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", obj, 58)
        if e_type != 1 or e_machine != 62 or e_shentsize != 64:
            raise LoadError("not an x86-64 relocatable object")
        secs = [struct.unpack_from("<IIQQQQIIQQ", obj, e_shoff + 64 * i) for i in range(e_shnum)]
        for _, typ, _, _, s_off, size, *_ in secs:
            if typ != 8 and s_off + size > len(obj):  # SHT_NOBITS occupies no file space
                raise LoadError("section outside the file")
        shstr = secs[e_shstrndx]

        def cstr(off):
            return obj[off : obj.index(b"\0", off)].decode()

        names = [cstr(shstr[4] + s[0]) for s in secs]
        # Lay out allocated sections: read-only ones (code, constants) first, writable ones on
        # their own pages. .eh_frame is left out (nothing unwinds through kernels).
        place, off = {}, 0
        page = 4096
        writable_start = None
        for want_write in (False, True):
            if want_write:
                off = (off + page - 1) // page * page
                writable_start = off
            for i, (_, _, flags, _, _, size, _, _, align, _) in enumerate(secs):
                if not flags & 0x2 or bool(flags & 0x1) != want_write or names[i] == ".eh_frame" or size == 0:
                    continue
                align = max(int(align), 1)
                off = (off + align - 1) // align * align
                place[i] = off
                off += size
        total = max((off + page - 1) // page * page, page)
        base = self.mmap(None, total, 3, 0x22, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
        if base in (None, ctypes.c_void_p(-1).value):
            raise LoadError("mmap failed")
        self.keep.append((base, total))
        for i, o in place.items():
            _, typ, _, _, s_off, size, _, _, _, _ = secs[i]
            if typ != 8:  # SHT_NOBITS stays zero
                ctypes.memmove(base + o, obj[s_off : s_off + size], size)
        # symbols
        symtab = next((i for i, s in enumerate(secs) if s[1] == 2), None)
        if symtab is None:
            raise LoadError("no symbol table")
        st = secs[symtab]
        strtab = secs[st[6]][4]
        syms = []
        exported = {}
        for k in range(st[5] // 24):
            st_name, st_info, _, st_shndx, st_value, _ = struct.unpack_from("<IBBHQQ", obj, st[4] + 24 * k)
            name = cstr(strtab + st_name) if st_name else ""
            if st_shndx == 0:
                addr = None if not name else ("extern", name)
            elif st_shndx == 0xFFF1:
                addr = st_value
            elif st_shndx in place:
                addr = base + place[st_shndx] + st_value
            else:
                addr = ("missing", st_shndx)
            syms.append(addr)
            if st_info >> 4 == 1 and isinstance(addr, int) and name:  # STB_GLOBAL
                exported[name] = addr
        # relocations
        for _, typ, _, _, s_off, size, _, info, _, _ in secs:
            if typ != 4 or info not in place:  # SHT_RELA for a loaded section
                continue
            if typ == 9:  # pragma: no cover - SHT_REL is not produced for x86-64
                raise LoadError("REL relocations")
            tbase = base + place[info]
            tsize = secs[info][5]
            for k in range(size // 24):
                r_offset, r_info, r_addend = struct.unpack_from("<QQq", obj, s_off + 24 * k)
                rtype, rsym = r_info & 0xFFFFFFFF, r_info >> 32
                if r_offset + 8 > tsize or rsym >= len(syms):
                    raise LoadError("relocation outside its section")
                s = syms[rsym]
                if isinstance(s, tuple):
                    if s[0] != "extern":
                        raise LoadError(f"relocation against an unloaded section {s[1]}")
                    s = self.resolve(s[1])
                elif s is None:
                    s = 0
                p = tbase + r_offset
                if rtype == 1:  # R_X86_64_64
                    ctypes.c_uint64.from_address(p).value = (s + r_addend) & 0xFFFFFFFFFFFFFFFF
                elif rtype in (2, 4):  # R_X86_64_PC32, R_X86_64_PLT32
                    v = s + r_addend - p
                    if not -(1 << 31) <= v < (1 << 31):
                        raise LoadError("PC-relative relocation out of range")
                    ctypes.c_int32.from_address(p).value = v
                elif rtype == 24:  # R_X86_64_PC64
                    ctypes.c_int64.from_address(p).value = s + r_addend - p
                else:
                    raise LoadError(f"relocation type {rtype}")
        ro = writable_start if writable_start else total
        if ro and self.mprotect(base, ro, 5) != 0:  # PROT_READ|PROT_EXEC
            raise LoadError("mprotect failed")
        return exported


class _LockBypass:
    """llvmlite serialises every call into LLVM with one process-wide lock (its global context
    is shared), whose entry also runs registered callbacks (numba's compile-event hooks).
    funcgrad's compile threads each own their LLVM context, target machine and modules, which
    LLVM supports compiling concurrently: this stand-in for that lock lets the threads that set
    ``bypass`` through, skipping lock and callbacks (every other thread still goes through
    both), so kernels compile on several cores (ctypes releases the GIL during the calls)."""

    def __init__(self, inner):
        self.inner = inner
        self.local = threading.local()

    def __enter__(self):
        if not getattr(self.local, "bypass", False):
            self.inner.__enter__()

    def __exit__(self, *exc):
        if not getattr(self.local, "bypass", False):
            self.inner.__exit__(*exc)

    def __getattr__(self, name):  # register(), unregister() of lock callbacks...
        return getattr(self.inner, name)


def _install_bypass(llvm):
    """The bypassable lock, or None where llvmlite's internals are not as expected."""
    try:
        from llvmlite.binding import ffi

        lib = ffi.lib
        if isinstance(lib._lock, _LockBypass):
            return lib._lock
        inner = lib._lock
        if not (hasattr(inner, "__enter__") and hasattr(inner, "__exit__") and isinstance(lib._fntab, dict)):
            return None
        bypass = _LockBypass(inner)
        # the wrappers made so far hold the lock themselves; later ones take lib._lock
        for wrapper in list(lib._fntab.values()):
            if getattr(wrapper, "_lock", None) is not inner:
                return None
        lib._lock = bypass
        for wrapper in list(lib._fntab.values()):
            wrapper._lock = bypass
        return bypass
    except Exception:  # pragma: no cover - another llvmlite layout: compile on one thread
        return None


class _Compiler:
    """llvmlite's target machine and pass pipeline, as numba configures them. Each thread gets
    its own LLVM context and target machine; with :class:`_LockBypass` installed, kernels
    compile in parallel."""

    def __init__(self):
        import llvmlite.binding as llvm

        self.llvm = llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.bypass = _install_bypass(llvm) if os.environ.get("FUNCGRAD_JIT_COMPILE_THREADS", "") != "1" else None
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        self.triple = llvm.get_process_triple()
        self.target = llvm.Target.from_triple(self.triple)
        self.tm = self._machine()
        self.data_layout = str(self.tm.target_data)
        self._local = threading.local()

    def _machine(self, opt=3):
        # numba's JIT target machine: host CPU, static relocations, the JIT code model (every
        # address a 64-bit absolute: the loader above only patches those)
        return self.target.create_target_machine(
            cpu=self.cpu, features=self.features, opt=opt, reloc="static", codemodel="jitdefault", jit=True
        )

    def compile(self, ir_text, optimize=True):
        """Object code of an IR module (thread-safe: each thread has its own context and target
        machines; in a thread marked by :meth:`parallel`, llvmlite's lock is skipped).

        ``optimize=False`` is for hand-written IR that is already in its final shape (the GEMM):
        no IR passes and the quicker code generator settings, a third of the compile time for
        the same speed (measured)."""
        llvm = self.llvm
        loc = self._local
        if not hasattr(loc, "tm"):
            loc.tm, loc.tm_quick, loc.context = self._machine(), self._machine(1), llvm.create_context()
        mod = llvm.parse_assembly(ir_text, context=loc.context)
        mod.triple = self.triple
        mod.data_layout = self.data_layout
        mod.verify()
        if optimize:
            pto = llvm.create_pipeline_tuning_options(speed_level=3)
            pto.loop_vectorization = True
            pto.slp_vectorization = False  # numba's default (NUMBA_SLP_VECTORIZE=0)
            pb = llvm.create_pass_builder(loc.tm, pto)
            pb.getModulePassManager().run(mod, pb)
            del pb, pto
        obj = (loc.tm if optimize else loc.tm_quick).emit_object(mod)
        mod.close()  # now, in this thread: the module belongs to this thread's context
        return obj

    def parallel(self):
        """A context manager for compile threads: inside it, this thread skips llvmlite's lock
        (a no-op where the bypass could not be installed: threads then take turns)."""
        return _Parallel(self.bypass)


class _Parallel:
    def __init__(self, bypass):
        self.bypass = bypass

    def __enter__(self):
        if self.bypass is not None:
            self.bypass.local.bypass = True

    def __exit__(self, *exc):
        if self.bypass is not None:
            self.bypass.local.bypass = False


_runtime = None
_runtime_error = None
_init_lock = threading.Lock()


def disable(error):
    """Turn native kernels off for this process (numba compiles every kernel from now on)."""
    global _runtime, _runtime_error
    with _init_lock:
        _runtime, _runtime_error = None, error


def runtime():
    """The process's native runtime, or None when native kernels are off or unavailable."""
    global _runtime, _runtime_error
    if _runtime is not None or _runtime_error is not None or not ENABLED:
        return _runtime
    with _init_lock:
        if _runtime is None and _runtime_error is None:
            try:
                _runtime = _Runtime()
            except Exception as e:  # pragma: no cover - no llvmlite, an unusual interpreter
                _runtime_error = e
    return _runtime


class Signature:
    """What a kernel takes: arrays ``(role, dtype, ndim)`` (role "out" or "in"), scalar dtypes,
    the number of loop sizes; then ``lo``, ``hi``."""

    __slots__ = ("arrays", "scalars", "nsizes", "_key", "_code_key")

    def __init__(self, arrays, scalars, nsizes):
        self.arrays = tuple((r, np.dtype(d).name, int(n)) for r, d, n in arrays)
        self.scalars = tuple(np.dtype(d).name for d in scalars)
        self.nsizes = int(nsizes)
        self._key = repr((self.arrays, self.scalars, self.nsizes))
        # The code does not depend on the ranks (arrays are flat data with a size); the
        # descriptor checks them, as numba's signatures do.
        self._code_key = repr(([d for _, d, _ in self.arrays], self.scalars, self.nsizes))

    @property
    def nargs(self):
        return len(self.arrays) + len(self.scalars) + self.nsizes + 2

    def key(self):
        return self._key

    def code_key(self):
        return self._code_key


def type_nums(dtype):
    """The type numbers of ``dtype`` (int64 is both ``l`` and ``q`` on LP64 systems)."""
    dt = np.dtype(dtype)
    nums = sorted({np.dtype(c).num for c in np.typecodes["All"] if c not in "OSUVMm" and np.dtype(c) == dt})
    return (nums + nums)[:2]


def describe(entry, sig, label):
    """The descriptor the trampoline reads (see llvmgen.trampoline_ir): int64 words, then strings."""
    words = [entry, sig.nargs, len(sig.arrays), len(sig.scalars), sig.nsizes, 0]
    texts = [(5, label)]
    for role, dt, ndim in sig.arrays:
        need = C_CONTIGUOUS | ALIGNED | (WRITEABLE if role == "out" else 0)
        words += [need, ndim, *type_nums(dt), 0]
        what = f"a {'writeable ' if role == 'out' else ''}C-contiguous aligned {dt} array of rank {ndim}"
        texts.append((len(words) - 1, what))
    for dt in sig.scalars:
        words += [id(np.dtype(dt).type), 1 if dt == "bool" else np.dtype(dt).itemsize * 8, 0]
        texts.append((len(words) - 1, f"a numpy.{np.dtype(dt).type.__name__} scalar"))
    blob = b""
    for idx, text in texts:
        words[idx] = 8 * len(words) + len(blob)
        blob += text.encode() + b"\0"
    return struct.pack(f"<{len(words)}q", *words) + blob


def tag(sig):
    """What the object code of a kernel depends on besides its source: its argument types and
    the environment (see the module docstring)."""
    return hashlib.sha256((runtime().env_hash + sig.code_key()).encode()).hexdigest()[:16]


def object_path(directory, key, tag_):
    return os.path.join(directory, f"funcgrad_kernel_{key}.{tag_}.o")


def symbol(key, tag_):
    return f"funcgrad_kernel_{key}_{tag_}"


def kernel_ir(source, sig, sym):
    """IR module text of a kernel's source (raises :class:`Unsupported`)."""
    from . import llvmgen

    return llvmgen.kernel_module(source, sig, sym)


def compile_ir(ir_text, optimize=True):
    """Object code of an IR module (thread-safe; imports llvmlite.binding); see
    :meth:`_Compiler.compile` for ``optimize``."""
    return runtime().compiler().compile(ir_text, optimize)


def compile_object(source, sig, sym):
    """Object code of a kernel's source (raises :class:`Unsupported`)."""
    from . import llvmgen

    return runtime().compiler().compile(llvmgen.kernel_module(source, sig, sym))


_MAGIC = b"FGKO1\0"  # object files on disk: magic, SHA-256 of the code, the code


def read_object(path):
    """The object code cached at ``path``, or None (missing, or damaged: its checksum differs)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if data[: len(_MAGIC)] != _MAGIC or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC) : head]:
        return None
    return data[head:]


def replace_file(path, data: bytes, suffix: str):
    """Write ``data`` to ``path`` through a temporary file renamed into place: a process racing
    on the same file sees no file, the old one or the complete new one, never a partial one."""
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path, obj):
    """Write object code ``obj`` to ``path`` (with its checksum), atomically."""
    replace_file(path, _MAGIC + hashlib.sha256(obj).digest() + obj, ".o")


def load(obj, sym):
    """The address of a kernel's entry point ``sym`` once its object code is loaded."""
    return runtime().load_symbol(obj, sym)


def function(entry, sig, label, directories):
    """The callable kernel: the trampoline (cached in one of ``directories``) with the descriptor
    of entry point ``entry`` for signature ``sig``."""
    rt = runtime()
    return rt.function(rt.trampoline(directories), entry, sig, label)


def cached_entries(key, source_files, make_ir, names, directories, optimize=True):
    """Entry points ``names`` of a hand-written IR module (not a kernel): its object code from
    the disk cache (keyed by ``key``, the contents of ``source_files`` and the environment), or
    compiled from ``make_ir(symbols)`` and cached as ``funcgrad_native_<key>.<tag>.o``.
    ``make_ir`` receives the symbol names to define, in the order of ``names``. Raises
    :class:`LoadError` where the code cannot load."""
    rt = runtime()
    h = hashlib.sha256((rt.env_hash + key).encode())
    for f in source_files:
        with open(f, "rb") as fh:
            h.update(fh.read())
    tag_ = h.hexdigest()[:16]
    symbols = [f"funcgrad_{n}_{tag_}" for n in names]
    path = lambda d: os.path.join(d, f"funcgrad_native_{key}.{tag_}.o")  # noqa: E731
    for d in directories:
        obj = read_object(path(d))
        if obj is not None:
            try:
                return rt.load_symbols(obj, symbols)
            except LoadError:
                break
    with rt.compiler().parallel():  # may run beside the kernels' compile threads
        obj = compile_ir(make_ir(symbols), optimize)
    for d in directories:
        try:
            write_atomic(path(d), obj)
            break
        except OSError:
            continue
    return rt.load_symbols(obj, symbols)

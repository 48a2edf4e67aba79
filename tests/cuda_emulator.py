"""Run the CUDA C of ``tinylm/kernels/gpu.py`` and ``word2vec_gpu.py`` on the CPU, for tests on
machines without a GPU (CI included).

``fake_cupy(build_dir)`` returns a stand-in for the ``cupy`` module: its arrays are NumPy
arrays, and its ``RawModule`` compiles the kernels' source with g++ against ``HEADER`` below,
where each thread of a block is a ``std::thread``, ``__syncthreads()`` is a ``std::barrier``,
``__shared__`` arrays are statics (the blocks of a launch run one after another, so one copy
serves each block in turn) and atomics take a lock. A launch checks every argument's dtype
against the kernel's C signature. What this cannot show: anything about speed, warp
scheduling or the GPU's memory model; the real-GPU tests (``test_gpu.py``) do that part.
"""
import ctypes
import hashlib
import re
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np

HEADER = r"""// A CPU stand-in for the parts of CUDA that tinylm's kernels use: every thread of a block is a
// std::thread, __syncthreads is a std::barrier, __shared__ arrays are statics (blocks run one
// after another, so one copy serves each block in turn), atomics take a lock.
#include <barrier>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>
using std::exp; using std::log; using std::sqrt; using std::tanh; using std::erf;
struct emu_dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
static std::barrier<>* emu_barrier = nullptr;
static unsigned char* emu_dyn_smem = nullptr;
static std::mutex emu_atomic_lock;
#define __global__
#define __device__
#define __shared__ static
#define __align__(n) alignas(n)
inline void __syncthreads() { emu_barrier->arrive_and_wait(); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
template <typename T> T atomicAdd(T* a, T v) {
    std::lock_guard<std::mutex> g(emu_atomic_lock); T old = *a; *a = old + v; return old; }
template <typename F>
void emu_launch(unsigned gx, unsigned gy, unsigned bx, size_t smem, F kernel) {
    gridDim.x = gx; gridDim.y = gy; blockDim.x = bx;
    std::vector<unsigned char> dyn(smem + 64);
    emu_dyn_smem = dyn.data();
    for (unsigned by_ = 0; by_ < gy; ++by_)
        for (unsigned bx_ = 0; bx_ < gx; ++bx_) {
            std::barrier<> bar(bx);
            emu_barrier = &bar;
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < bx; ++t)
                threads.emplace_back([=]() { threadIdx.x = t; blockIdx.x = bx_; blockIdx.y = by_;
                                            kernel(); });
            for (auto& th : threads) th.join();
        }
}
"""

_CTYPES = {"float": ctypes.c_float, "double": ctypes.c_double, "int": ctypes.c_int,
           "long long": ctypes.c_longlong}
_POINTEE = {"float": np.float32, "double": np.float64, "long long": np.int64, "int": np.int32,
            "bool": np.bool_}
_SCALAR = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64}
NUMPY_FUNCTIONS = ("ascontiguousarray", "empty", "empty_like", "zeros", "zeros_like",
                   "broadcast_to", "asarray", "float32", "float64", "int32", "int64", "bool_")


def compiler():
    """The C++ compiler to use, or None."""
    return shutil.which("g++")


def _params(code, name):
    """[(C type without const/*, is a pointer, name)] of kernel ``name`` in ``code``."""
    m = re.search(r"__global__\s+void\s+" + name + r"\s*\(([^)]*)\)", code)
    out = []
    for p in m.group(1).split(","):
        decl, pname = " ".join(p.split()).rsplit(" ", 1)
        ptr = "*" in decl or "*" in pname
        out.append((decl.replace("const ", "").replace("*", "").strip(), ptr, pname.strip("*")))
    return out


class RawModule:
    """``cupy.RawModule(code=, options=, name_expressions=)``, built with g++."""

    build_dir = None

    def __init__(self, code, options=(), name_expressions=()):
        body = code.replace("extern __shared__ __align__(16) unsigned char smem_raw[];",
                            "unsigned char* smem_raw = emu_dyn_smem;")
        src = HEADER + "\n" + body + "\n"
        self.signatures = {}
        for expr in name_expressions:
            name, T = re.match(r"(\w+)<(\w+)>", expr).groups()
            params = [(T if d == "T" else d, ptr, n) for d, ptr, n in _params(code, name)]
            cparams = ", ".join(f"{'void*' if ptr else d} {n}" for d, ptr, n in params)
            call = ", ".join(f"({d}*){n}" if ptr else n for d, ptr, n in params)
            src += (f'extern "C" void {name}__{T}(unsigned gx, unsigned gy, unsigned bx, '
                    f'unsigned long smem, {cparams}) {{ emu_launch(gx, gy, bx, smem, [=]() '
                    f'{{ {name}<{T}>({call}); }}); }}\n')
            self.signatures[expr] = (f"{name}__{T}", params)
        key = hashlib.sha1(src.encode()).hexdigest()[:16]
        library = Path(self.build_dir) / f"kernels_{key}.so"
        if not library.exists():
            source = library.with_suffix(".cpp")
            source.write_text(src)
            subprocess.run([compiler(), "-std=c++20", "-O0", "-shared", "-fPIC", "-pthread",
                            "-w", str(source), "-o", str(library)], check=True)
        self.library = ctypes.CDLL(str(library))

    def get_function(self, expr):
        symbol, params = self.signatures[expr]
        fn = getattr(self.library, symbol)
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong] + [
            ctypes.c_void_p if ptr else _CTYPES[d] for d, ptr, _ in params]
        fn.restype = None

        def launch(grid, block, args, shared_mem=0):
            if len(args) != len(params):
                raise TypeError(f"{expr}: {len(args)} arguments for {len(params)} parameters")
            values = []
            for a, (d, ptr, n) in zip(args, params):
                want = (_POINTEE if ptr else _SCALAR)[d]
                ok = (isinstance(a, np.ndarray) and a.flags.c_contiguous if ptr
                      else isinstance(a, np.generic)) and a.dtype == want
                if not ok:
                    raise TypeError(f"{expr}: argument {n} must be a contiguous {d} array"
                                    if ptr else f"{expr}: argument {n} must be a {d} scalar")
                values.append(a.ctypes.data if ptr else a.item())
            gx, gy = (tuple(grid) + (1,))[:2]
            fn(gx, gy, block[0], shared_mem, *values)
        return launch


def fake_cupy(build_dir):
    """A ``cupy`` stand-in module (see the module docstring); kernels build in ``build_dir``."""
    module = types.ModuleType("cupy")
    for name in NUMPY_FUNCTIONS:
        setattr(module, name, getattr(np, name))
    module.ndarray = type("NotACupyArray", (), {})   # NumPy arrays stay "on the CPU"
    module.__version__ = "cpu-emulation"
    module.RawModule = type("RawModule", (RawModule,), {"build_dir": str(build_dir)})
    return module

"""A kernel's own identity, read from the name a profiler prints for it.

Name rules must match what a kernel *is* (its function, or for a wrapper kernel the class it
instantiates), never its template arguments or parameter types: a quantization kernel whose
argument types mention ``flashinfer`` is not FlashInfer attention, and a GEMM launched with a
``cutlass::half_t`` argument is not what makes a kernel a cutlass GEMM. Profilers print three
shapes of names, all read here:

* demangled C++ (``void ns::fn<T...>(args)``, ``std::enable_if<...>::type ns::fn<...>(...)``): read
  from the end, because return types and ``(anonymous namespace)`` hold brackets of their own (a
  CUDA kernel is a free function, so namespaces are all that can precede its name);
* mangled Itanium (``_ZN7ck_tile6kentryILi64E...``: ROCm often leaves CK and aiter names so): the
  nested name, read component by component;
* bare names (Triton, SASS, cubins, ``extern "C"``): the name is the identity; CuTe DSL kernels
  (``kernel_cutlass_kernel_<module path><Class>_object_at_<args>``) keep the module path and class,
  without the prefix every CuTe DSL kernel shares (it says cutlass, not GEMM) and the arguments.

Wrapper kernels (cutlass ``device_kernel``/``Kernel2``, CK ``kentry``, FA3's ``enable_sm90``,
PyTorch's elementwise launchers around a functor) keep the wrapper and add the first class they
instantiate, so rules can see both: ``cutlass::device_kernel<flash::FlashAttnFwdSm90>``.
"""

from __future__ import annotations

import functools
import re

# Wrappers whose identity is the first class among their template arguments.
WRAPPERS = frozenset(
    {
        "device_kernel",  # cutlass::device_kernel<Op> (FA3, FlashMLA, cutlass 3.x GEMMs)
        "Kernel",  # cutlass::Kernel<Op> (cutlass 2.x; cuDNN's cutlass__5x_cudnn::Kernel)
        "Kernel2",  # cutlass::Kernel2<Op>
        "kentry",  # ck_tile::kentry<Threads, Blocks, Kernel>
        "enable_sm90_or_later",  # FA3 (hopper/utils.h)
        "enable_sm90",
        "enable_sm80_to_sm89",
        "vectorized_elementwise_kernel",  # PyTorch's launchers: the functor is the op
        "unrolled_elementwise_kernel",
        "elementwise_kernel",
        "elementwise_kernel_manual_unroll",
        "unrolled_elementwise_kernel_for_multi_outputs",
        "gpu_kernel_impl",
        "gpu_kernel_impl_nocast",
    }
)
_ANON = "(anonymous namespace)"
_BARE = re.compile(r"[\w.$]+")
_CUTE_DSL = re.compile(r"^kernel_cutlass_kernel_(.+?)(?:_object_at_.*)?$")
_LEADING_NAME = re.compile(r"(?:(?:[A-Za-z_]\w*|\(anonymous namespace\))::)*[A-Za-z_]\w*")
_BUILTIN = frozenset({"bool", "char", "short", "int", "long", "float", "double", "unsigned", "signed", "void"})
_MAX_DEPTH = 4


@functools.lru_cache(maxsize=1 << 16)
def identity(name: str) -> str:
    """The kernel's qualified function name, with the class a wrapper instantiates in ``<...>``;
    names that cannot be read come back as they are."""
    s = name.strip()
    if s.startswith(("Memcpy ", "Memset ")):  # runtime records, not functions: "Memcpy HtoD (Pageable -> Device)"
        return s
    if not s or _BARE.fullmatch(s) and not s.startswith("_Z"):
        cute = _CUTE_DSL.match(s)
        return cute.group(1) if cute else s
    try:
        got = _mangled(s) if s.startswith("_Z") else _demangled(s, 0)
    except (IndexError, ValueError):  # a truncated or unusual name: fall back to the name itself
        got = None
    return got or s


# --- demangled names ------------------------------------------------------------------------------


def _match_back(s: str, end: int, open_c: str, close_c: str) -> int:
    """Index of the bracket opening the one that closes at ``s[end]`` (-1: none); brackets of the
    other kind nest inside and are skipped, so ``<(8)>(0)>`` reads right."""
    depth = 0
    other = {"<": "()", "(": "<>"}[open_c]
    i = end
    while i >= 0:
        c = s[i]
        if c == close_c:
            depth += 1
        elif c == open_c:
            depth -= 1
            if depth == 0:
                return i
        elif c == other[1] and open_c == "<":
            i = _match_back(s, i, other[0], other[1])
            if i < 0:
                return -1
        i -= 1
    return -1


def _demangled(s: str, depth: int) -> str | None:
    end = len(s) - 1
    while end >= 0 and s[end] == " ":
        end -= 1
    if end >= 0 and s[end] == ")":
        end = _match_back(s, end, "(", ")") - 1
        while end >= 0 and s[end] == " ":
            end -= 1
    args = ""
    if end >= 0 and s[end] == ">":
        o = _match_back(s, end, "<", ">")
        if o < 0:
            return None
        args, end = s[o + 1 : end], o - 1
    qualified = _qualified_before(s, end + 1)
    if not qualified:
        return None
    return _with_inner(qualified, args, depth)


def _qualified_before(s: str, stop: int) -> str:
    """The ``ns::ns::name`` ending at ``stop`` (exclusive), read backwards."""
    parts: list[str] = []
    i = stop
    while True:
        j = i
        while j > 0 and (s[j - 1].isalnum() or s[j - 1] == "_"):
            j -= 1
        if j < i:
            parts.append(s[j:i])
        elif s[:i].endswith(_ANON):
            j = i - len(_ANON)
            parts.append(_ANON)
        else:
            break
        if j >= 2 and s[j - 2 : j] == "::":
            i = j - 2
            continue
        break
    return "::".join(reversed(parts))


def _with_inner(qualified: str, args: str, depth: int) -> str:
    """``qualified``, plus ``<inner>`` when it is a wrapper and ``args`` name a class."""
    if depth >= _MAX_DEPTH or qualified.rsplit("::", 1)[-1] not in WRAPPERS or not args:
        return qualified
    for arg in _split_args(args):
        a = arg.strip().removeprefix("const ").removeprefix("typename ").removeprefix("&").strip()
        m = _LEADING_NAME.match(a)
        if m is None or m.group(0) in _BUILTIN or m.group(0) in ("true", "false"):
            continue
        head = m.group(0)
        rest = a[m.end() :]
        inner_args = ""
        if rest.startswith("<"):
            close = _match_forward(rest, 0)
            inner_args = rest[1:close] if close > 0 else ""
        return f"{qualified}<{_with_inner(head, inner_args, depth + 1)}>"
    return qualified


def _split_args(args: str) -> list[str]:
    """Top-level template arguments (commas inside <>, () or {} do not split)."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(args):
        if c in "<({":
            depth += 1
        elif c in ">)}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(args[start:i])
            start = i + 1
    out.append(args[start:])
    return out


def _match_forward(s: str, start: int) -> int:
    depth = 0
    for i in range(start, len(s)):
        if s[i] in "<(":
            depth += 1
        elif s[i] in ">)":
            depth -= 1
            if depth == 0:
                return i
    return -1


# --- mangled (Itanium) names --------------------------------------------------------------------


class _Mangled:
    """Just enough of the Itanium grammar to read a kernel's nested name and its first class
    template argument: source names, nested names, substitutions, literals, builtin types."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 2  # after "_Z"
        self.subs: list[str] = []

    def peek(self, k: int = 0) -> str:
        return self.s[self.i + k]

    def source_name(self) -> str:
        j = self.i
        while self.s[j].isdigit():
            j += 1
        n = int(self.s[self.i : j])
        self.i = j + n
        name = self.s[j : j + n]
        return "(anonymous namespace)" if name.startswith("_GLOBAL__N") else name

    def substitution(self) -> str:
        j = self.s.index("_", self.i)
        code = self.s[self.i + 1 : j]
        self.i = j + 1
        if code == "t":  # St is std:: (handled by the caller); keep this total anyway
            return "std"
        k = 0 if code == "" else int(code, 36) + 1
        return self.subs[k] if k < len(self.subs) else "?"

    def name(self) -> list[str]:
        """A (possibly nested) name, up to its template arguments; returns its components."""
        c = self.peek()
        if c == "N":
            self.i += 1
            while self.peek() in "rVK":
                self.i += 1
            parts: list[str] = []
            while self.peek() not in "IE":
                parts.append(self.component())
                self.subs.append("::".join(parts))
            return parts
        return [self.component()]

    def component(self) -> str:
        c = self.peek()
        if c.isdigit():
            return self.source_name()
        if self.s.startswith("St", self.i):
            self.i += 2
            return "std"
        if c == "S":
            return self.substitution()
        if c == "L":  # internal linkage marker before a source name
            self.i += 1
            return self.component()
        raise IndexError("unreadable component")

    def first_class_arg(self) -> str | None:
        """After ``I``: the first template argument that names a class, or None."""
        while self.peek() != "E":
            c = self.peek()
            if c == "L":  # literal: L <type> <value> E
                self.i += 1
                if self.peek().islower():
                    self.i += 1
                else:
                    self.name()
                while self.peek() in "n0123456789":
                    self.i += 1
                self.i += 1  # the closing E
            elif c == "D":  # builtin extended type: Dh, DF16b, Dn ...
                self.i += 2
                while self.s[self.i - 1] == "F" or self.peek().isdigit():
                    self.i += 1
                if self.peek() in "b_":
                    self.i += 1
            elif c in "PKRVO" or c.islower():  # qualifiers of the next type, or a builtin type
                self.i += 1
            else:
                return "::".join(self.name())
        return None


def _mangled(s: str) -> str | None:
    p = _Mangled(s)
    parts = p.name()
    qualified = "::".join(parts)
    if parts[-1] in WRAPPERS and p.i < len(s) and p.peek() == "I":
        p.i += 1
        inner = p.first_class_arg()
        if inner:
            return f"{qualified}<{inner}>"
    return qualified

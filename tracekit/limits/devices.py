"""The device table: peak DRAM bandwidth, dense peak FLOP/s per dtype and memory size of the GPUs
LLM decode runs on, each figure with the vendor document it comes from (``devices.json``, package
data). Pure Python: reports and ``analyze`` read it without torch."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from tracekit.errors import UserError

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


@dataclass(frozen=True)
class Device:
    key: str  # 'h100-sxm', 'jetson-orin-agx', 'mi300x'
    name: str  # 'NVIDIA H100 SXM5 80GB'
    vendor: str
    peak_bandwidth_tb_s: float
    peak_tflops: Mapping[str, float]  # dense, by dtype, where the device has it
    memory_gb: float
    source: str  # the vendor document: title, URL
    derived: str = ""  # how a figure was derived from the document, where it is not read off it
    trace_names: tuple[str, ...] = ()
    # (major, minor, SMs or CUs, lowest GiB, highest GiB): a trace's deviceProperties without a name.
    trace_props: tuple[tuple[int, int, int, float, float], ...] = ()

    def peak_flops_for(self, dtype: str) -> float | None:
        """Dense peak FLOP/s (not TFLOP/s) for a dtype; fp16 stands in for bf16 where the table
        has only one, as both run on the same units wherever both exist."""
        tf = self.peak_tflops.get(dtype)
        if tf is None and dtype in ("bf16", "fp16"):
            tf = self.peak_tflops.get("fp16" if dtype == "bf16" else "bf16")
        return None if tf is None else tf * 1e12

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "name": self.name,
            "vendor": self.vendor,
            "peak_bandwidth_tb_s": self.peak_bandwidth_tb_s,
            "peak_tflops": dict(self.peak_tflops),
            "memory_gb": self.memory_gb,
            "source": self.source,
        }
        if self.derived:
            out["derived"] = self.derived
        return out


def _number(raw: Mapping[str, Any], field: str, key: str) -> float:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"devices.json: {key}.{field} must be a positive number, not {value!r}")
    return float(value)


def _device(raw: Mapping[str, Any]) -> Device:
    key = str(raw["key"])
    flops = raw.get("peak_tflops") or {}
    unknown = set(flops) - set(DTYPES)
    if unknown:
        raise ValueError(f"devices.json: {key}.peak_tflops has unknown dtypes {sorted(unknown)}")
    return Device(
        key=key,
        name=str(raw["name"]),
        vendor=str(raw["vendor"]),
        peak_bandwidth_tb_s=_number(raw, "peak_bandwidth_tb_s", key),
        peak_tflops=MappingProxyType({d: _number(flops, d, key) for d in DTYPES if d in flops}),
        memory_gb=_number(raw, "memory_gb", key),
        source=str(raw["source"]),
        derived=str(raw.get("derived", "")),
        trace_names=tuple(str(p) for p in raw.get("trace_names", ())),
        trace_props=tuple(
            (int(r["major"]), int(r["minor"]), int(r["units"]), float(r["memory_gib"][0]), float(r["memory_gib"][1]))
            for r in raw.get("trace_props", ())
        ),
    )


@cache
def devices() -> tuple[Device, ...]:
    """Every device of the table, in its order (more specific trace names first)."""
    text = resources.files("tracekit.limits").joinpath("devices.json").read_text(encoding="utf-8")
    return tuple(_device(d) for d in json.loads(text)["devices"])


def _norm(name: str) -> str:
    """A name as a user may spell it: lowercase, spaces, hyphens, underscores and vendor words
    gone; any other character stays, so a name with extra text matches no device."""
    words = re.split(r"[\s_-]+", name.lower())
    return "".join(w for w in words if w not in ("nvidia", "amd", "instinct", "geforce", "tesla", "gpu", "accelerator"))


def device_from_trace_name(name: str, *, memory_bytes: int | None = None) -> Device | None:
    """The table's device for the name a trace's ``deviceProperties`` (or torch) gives, e.g.
    "NVIDIA H100 80GB HBM3" or "AMD Instinct MI300X"; None where no row matches or the name is
    ambiguous. A Jetson reports only "Orin": its memory size (``totalGlobalMem``) picks the AGX
    64 GB, the one Orin whose size no other shares."""
    low = " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())
    if not low:
        return None
    for dev in devices():
        if any(re.search(p, low) for p in dev.trace_names):
            return dev
    if re.fullmatch(r"(nvidia )?(jetson )?orin", low) and memory_bytes is not None and memory_bytes >= 48e9:
        return by_key("jetson-orin-agx")
    return None


def device_from_props(major: int, minor: int, units: int, memory_bytes: int) -> Device | None:
    """The table's device for a trace's unnamed ``deviceProperties``: compute capability, SM (or
    CU) count and memory size, where exactly one row matches."""
    gib = memory_bytes / 2**30
    hits = [
        d
        for d in devices()
        for (ma, mi, n, lo, hi) in d.trace_props
        if (ma, mi, n) == (major, minor, units) and lo <= gib <= hi
    ]
    return hits[0] if len(hits) == 1 else None


def by_key(key: str) -> Device:
    for dev in devices():
        if dev.key == key:
            return dev
    raise KeyError(key)


def find_device(name: str, flag: str = "--device") -> Device:
    """A device by its key ('h100-sxm') or its table name, compared without case, spacing or
    vendor words. A name a user types is matched whole: "h200x" is no H200 (a typo must not
    compare with another device's peaks); names read from traces go through
    ``device_from_trace_name`` instead. Unknown or empty: a UserError naming ``flag`` (the option
    that gave ``name``), the closest names and, for --device, --peak-bandwidth / --peak-flops."""
    wanted = _norm(name)
    if not wanted:
        raise UserError(f"{flag} {name!r}: give a device name from 'tracekit devices'")
    for dev in devices():
        if wanted in (_norm(dev.key), _norm(dev.name)):
            return dev
    scored = sorted(
        ((difflib.SequenceMatcher(None, wanted, _norm(d.key)).ratio(), d.key) for d in devices()),
        key=lambda pair: -pair[0],
    )
    close = [key for score, key in scored[:3] if score >= 0.35]
    # A name as a trace spells it ("NVIDIA H100 80GB HBM3") is read by pattern for traces; offered
    # here as the suggestion, never taken.
    read = device_from_trace_name(name)
    if read is not None:
        close = [read.key, *(k for k in close if k != read.key)][:3]
    hint = f" (closest: {', '.join(close)})" if close else ""
    # Only --device has figures to stand in for a device the table lacks (advise --on has none);
    # --peak-flops is not named, as advise takes only the bandwidth.
    other = ", or --peak-bandwidth GB/s for another device" if flag == "--device" else ""
    raise UserError(f"unknown device {name!r}{hint}: pass {flag} with a name from 'tracekit devices'{other}")

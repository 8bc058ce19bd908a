"""Peak memory bandwidth of known devices, with where each figure comes from."""

from __future__ import annotations

from dataclasses import dataclass

from tracekit.manifest import DeviceFacts


@dataclass(frozen=True)
class PeakBandwidth:
    match: str  # case-insensitive substring of the device name
    gbps: float
    source: str


# Vendor datasheet figures (decimal GB/s). More specific names first.
KNOWN: tuple[PeakBandwidth, ...] = (
    PeakBandwidth("H200", 4800.0, "NVIDIA H200 Tensor Core GPU datasheet (HBM3e, 4.8 TB/s)"),
    PeakBandwidth("H100 PCIe", 2000.0, "NVIDIA H100 datasheet, PCIe card (HBM2e, 2.0 TB/s)"),
    PeakBandwidth("H100 NVL", 3900.0, "NVIDIA H100 datasheet, NVL (3.9 TB/s)"),
    PeakBandwidth("H100", 3350.0, "NVIDIA H100 datasheet, SXM5 (HBM3, 3.35 TB/s)"),
    PeakBandwidth("A100-SXM4-80GB", 2039.0, "NVIDIA A100 datasheet, 80GB SXM (2,039 GB/s)"),
    PeakBandwidth("A100 80GB PCIe", 1935.0, "NVIDIA A100 datasheet, 80GB PCIe (1,935 GB/s)"),
    PeakBandwidth("A100", 1555.0, "NVIDIA A100 datasheet, 40GB (1,555 GB/s)"),
    PeakBandwidth("RTX 4090", 1008.0, "NVIDIA GeForce RTX 4090 specifications (1,008 GB/s)"),
    PeakBandwidth("RTX 3090", 936.0, "NVIDIA GeForce RTX 3090 specifications (936 GB/s)"),
    PeakBandwidth("L40S", 864.0, "NVIDIA L40S datasheet (864 GB/s)"),
    PeakBandwidth("L4", 300.0, "NVIDIA L4 datasheet (300 GB/s)"),
    PeakBandwidth("A10", 600.0, "NVIDIA A10 datasheet (600 GB/s)"),
    PeakBandwidth("V100", 900.0, "NVIDIA V100 datasheet, SXM2 (900 GB/s)"),
    PeakBandwidth("Orin", 204.8, "NVIDIA Jetson AGX Orin 64GB datasheet (LPDDR5, 204.8 GB/s)"),
    PeakBandwidth("MI300X", 5300.0, "AMD Instinct MI300X datasheet (5.3 TB/s)"),
    PeakBandwidth("MI250", 3276.8, "AMD Instinct MI250X datasheet (3.2 TB/s)"),
)


def lookup(device_name: str) -> PeakBandwidth | None:
    low = device_name.lower()
    for k in KNOWN:
        if k.match.lower() in low:
            return k
    return None


def choose(device: DeviceFacts, override_gbps: float | None) -> tuple[float | None, str]:
    """The bandwidth to use for bounds, and a sentence naming its source."""
    if override_gbps is not None:
        return override_gbps, "given with --peak-bandwidth"
    known = lookup(device.name)
    if known is not None:
        return known.gbps, known.source
    measured = device.measured_bandwidth_gbps
    if measured is not None and measured > 0:
        return float(measured), "measured during capture (best of 3 device copies of 256 MiB)"
    return None, "unknown (pass --peak-bandwidth GBPS)"

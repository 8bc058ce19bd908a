"""The device table and model facts: every figure sourced, names found, bad input one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli
from tracekit.errors import UserError
from tracekit.limits.devices import DTYPES, device_from_trace_name, devices, find_device
from tracekit.limits.model import from_config, from_preset
from tracekit.limits.roofline import choose_roof

QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"

REQUIRED = {
    "v100-sxm2", "a100-40gb", "a100-80gb-sxm", "h100-sxm", "h100-pcie", "h200", "b200", "gh200", "l4", "l40s",
    "a10", "t4", "rtx-3090", "rtx-4090", "rtx-5090", "jetson-orin-agx", "jetson-orin-nx", "jetson-orin-nano",
    "mi210", "mi250x", "mi300x", "mi325x", "mi355x",
}  # fmt: skip


def test_every_device_the_issue_names_is_there_with_a_source() -> None:
    table = {d.key: d for d in devices()}
    assert set(table) >= REQUIRED
    for d in table.values():
        assert "https://" in d.source and len(d.source.split("https://")[0].strip(" ,")) > 10, d.key
        assert d.peak_bandwidth_tb_s > 0 and d.memory_gb > 0
        assert set(d.peak_tflops) <= set(DTYPES) and "fp32" in d.peak_tflops
        # Dense tensor rates are above the FP32 rate on every device that has them.
        assert all(v >= d.peak_tflops["fp32"] for k, v in d.peak_tflops.items() if k != "fp32"), d.key


@pytest.mark.parametrize(
    ("trace_name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA GH200 144G HBM3e", "gh200-144gb"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb-sxm"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"),
        ("NVIDIA A10", "a10"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("Tesla T4", "t4"),
        ("Tesla V100-SXM2-16GB", "v100-sxm2"),
        ("Tesla V100-PCIE-32GB", "v100-pcie"),
        ("NVIDIA GeForce RTX 3090", "rtx-3090"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("NVIDIA GeForce RTX 5090", "rtx-5090"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI250X/MI250", "mi250x"),
        ("AMD Instinct MI210", "mi210"),
        ("AMD Instinct MI325X", "mi325x"),
        ("AMD Instinct MI355X", "mi355x"),
    ],
)
def test_a_traces_device_name_finds_its_row(trace_name: str, key: str) -> None:
    found = device_from_trace_name(trace_name)
    assert found is not None and found.key == key


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA GeForce RTX 3090 Ti", "cpu", "", "Orin"])
def test_a_name_the_table_lacks_or_cannot_tell_apart_finds_nothing(name: str) -> None:
    # A10G (AWS) and the 3090 Ti differ from the A10 and the 3090; a bare "Orin" could be any Jetson.
    assert device_from_trace_name(name) is None


def test_a_jetson_is_told_apart_by_its_memory() -> None:
    agx = device_from_trace_name("Orin", memory_bytes=64 * 10**9)
    assert agx is not None and agx.key == "jetson-orin-agx"
    assert device_from_trace_name("Orin", memory_bytes=16 * 10**9) is None


def test_find_device_takes_keys_and_names_without_case_or_spacing() -> None:
    assert find_device("h100-sxm").key == "h100-sxm"
    assert find_device("H100 SXM").key == "h100-sxm"
    assert find_device("h100_sxm").key == "h100-sxm"
    assert find_device("RTX4090").key == "rtx-4090"
    assert find_device("AMD Instinct MI300X").key == "mi300x"
    assert find_device("jetson orin agx").key == "jetson-orin-agx"
    assert find_device("NVIDIA H200 NVL 141GB").key == "h200-nvl"


@pytest.mark.parametrize(("name", "closest"), [("h200x", "h200"), ("h100-sxm;rm", "h100-sxm"), ("NVIDIA H100 80GB HBM3", "closest: h100-sxm")])
def test_a_flag_matches_whole_names_only(name: str, closest: str) -> None:
    """A trace's "NVIDIA H100 80GB HBM3" is read by pattern; a name a user types is not: "h200x"
    compared with an H200's peaks would be a typo turned into figures."""
    assert device_from_trace_name(name) is not None  # what the trace reader would make of it
    with pytest.raises(UserError) as err:
        find_device(name)
    msg = str(err.value)
    assert "\n" not in msg and "unknown device" in msg and closest in msg, msg


def test_an_empty_device_is_an_error_not_the_traces_own() -> None:
    with pytest.raises(UserError, match="--device '': give a device name"):
        find_device("")
    with pytest.raises(UserError, match="--device"):
        choose_roof(trace_device="NVIDIA H100 80GB HBM3", device="")


def test_an_unknown_device_names_the_flags_and_the_closest() -> None:
    with pytest.raises(UserError) as err:
        find_device("mi300")
    msg = str(err.value)
    assert "\n" not in msg and "--device" in msg and "--peak-bandwidth GB/s" in msg and "mi300x" in msg
    # every command's --peak-bandwidth takes GB/s: the message must not ask for TB/s
    assert "TB/s" not in msg


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_advise_on_an_unknown_device_names_on_not_device() -> None:
    done = run_cli("advise", "--preset", "mistral-7b", "--on", "jetson-orin", "--context", "16,1441")
    assert done.returncode == 2, done.stderr
    msg = done.stderr.strip()
    assert "\n" not in msg and "pass --on with a name" in msg and "--device" not in msg, msg


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_tracekit_devices_lists_the_table() -> None:
    done = run_cli("devices", "--format", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["devices"]
    assert [d["key"] for d in listed] == [d.key for d in devices()]
    mi300x = next(d for d in listed if d["key"] == "mi300x")
    assert mi300x["peak_bandwidth_tb_s"] == 5.3 and mi300x["peak_tflops"]["bf16"] == 1307.4
    table = run_cli("devices")
    assert table.returncode == 0 and "jetson-orin-agx" in table.stdout
    bad = run_cli("devices", "--format", "xml")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_qwen3_8b_config() -> None:
    m = from_config(QWEN3_8B)
    assert (m.layers, m.heads, m.kv_heads, m.head_dim, m.hidden) == (36, 32, 8, 128, 4096)
    assert (m.weight_bits, m.kv_bits, m.sliding_window, m.sliding_layers) == (16, 16, None, 0)
    # 2 (K and V) x 36 layers x 8 KV heads x 128 x 2 bytes
    assert m.kv_bytes_per_token() == 147_456
    assert m.kv_bytes(1000) == 147_456_000
    # Published as 8.2 B parameters (Qwen3 technical report); the Llama-shaped count leaves out
    # only the per-head Q/K norms (36 x 256 weights).
    assert 8.15e9 < m.params < 8.25e9
    assert m.source["layers"] == "config.json"


@pytest.mark.parametrize("value", [None, 0, "long", 1.5, True])
def test_an_odd_max_position_embeddings_loses_only_the_max_context(tmp_path: Path, value: object) -> None:
    """Only advice's notes use the model's longest context: an odd value there must not refuse a
    config.json that gives every figure (a reviewer found null refused as a missing field)."""
    cfg = json.loads(QWEN3_8B.read_text())
    cfg["max_position_embeddings"] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    shape = from_config(tmp_path / "config.json")
    assert shape.max_context is None and shape.layers == 36
    assert from_config(QWEN3_8B).max_context == 40_960


def test_sliding_window_layers_read_at_most_their_window(tmp_path: Path) -> None:
    cfg = json.loads(QWEN3_8B.read_text())
    cfg.update(sliding_window=1024, layer_types=["sliding_attention", "full_attention"] * 18)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    m = from_config(p)
    assert (m.sliding_window, m.sliding_layers) == (1024, 18)
    per_layer_token = 2 * 8 * 128 * 2
    assert m.kv_bytes(4096) == per_layer_token * (18 * 4096 + 18 * 1024)
    assert m.kv_bytes(512) == per_layer_token * 36 * 512
    cfg.pop("layer_types")
    cfg["use_sliding_window"] = True
    cfg["max_window_layers"] = 28
    p.write_text(json.dumps(cfg))
    assert from_config(p).sliding_layers == 8


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_hidden_layers": None}, "num_hidden_layers"),
        ({"num_hidden_layers": -3}, "num_hidden_layers"),
        ({"num_key_value_heads": 5}, "num_key_value_heads"),
        ({"head_dim": 1.5}, "head_dim"),
        ({"hidden_size": "4096"}, "hidden_size"),
        ({"torch_dtype": "float13"}, "torch_dtype"),
        ({"num_experts": 64}, "num_experts"),
        ({"kv_lora_rank": 512}, "kv_lora_rank"),
    ],
)
def test_an_absurd_or_missing_field_is_one_line_naming_it(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    cfg = json.loads(QWEN3_8B.read_text())
    for k, v in change.items():
        if v is None:
            cfg.pop(k)
        else:
            cfg[k] = v
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(UserError) as err:
        from_config(p)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_presets_without_torch() -> None:
    m = from_preset("llama3-8b")
    assert (m.layers, m.kv_heads, m.head_dim) == (32, 8, 128)
    assert m.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2
    assert 8.0e9 < m.params < 8.1e9  # Llama 3 8B: 8.03 B
    with pytest.raises(UserError):
        from_preset("llama9")


def test_limits_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from tracekit.limits import model, devices; model.from_preset('tiny'); devices.devices(); "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0


def test_a_config_that_is_not_a_file_is_refused_without_reading(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError) as err:
        from_config(fifo)  # a FIFO would block a reader forever
    assert "FIFO" in str(err.value) and "--model-config" in str(err.value)
    with pytest.raises(UserError) as err:
        from_config(tmp_path / "nowhere")
    assert "no such file" in str(err.value)
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_bytes(b" " * (5 << 20))
    with pytest.raises(UserError) as err:
        from_config(big)
    assert "too large" in str(err.value)


@pytest.mark.parametrize("columns", ["10", "60"])
def test_a_narrow_terminal_lists_the_devices_whole(columns: str) -> None:
    """Too narrow for the table: a line a device, every key and figure whole (no empty borders,
    no "h100-s…")."""
    done = run_cli("devices", env={"COLUMNS": columns})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert not any(set(line) <= set("┏┳┓┃┡╇┩│└┴┘━─ ") for line in lines), done.stdout
    h100 = find_device("h100-sxm")
    line = next(line for line in lines if line.startswith("h100-sxm:"))
    assert h100.name in line and f"{h100.peak_bandwidth_tb_s:.4g} TB/s" in line and "…" not in done.stdout
    assert len(lines) == len(devices()) + 1


def test_a_wide_terminal_keeps_the_table() -> None:
    done = run_cli("devices", env={"COLUMNS": "160"})
    assert done.returncode == 0 and "┃ device " in done.stdout and "…" not in done.stdout

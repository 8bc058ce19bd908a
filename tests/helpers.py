"""Helpers the test files import: where the real traces are, how to run the real command, and how
to look at an HTML page in real headless chromium.

Fixtures (pytest's) live in ``conftest.py``; plain functions and names live here, as pytest advises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Where a foreign trace is looked for, in order: the small traces committed with the tests, then the
# shared fixtures folder (it also holds the bigger ones, e.g. V100_DDP): beside the project, or where
# TRACEKIT_FIXTURES says (a checkout whose parent has no shared/).
FIXTURE_DIRS = (
    ROOT / "tests" / "data" / "foreign",
    Path(os.environ.get("TRACEKIT_FIXTURES") or ROOT.parent / "shared" / "fixtures" / "foreign"),
)

H100 = "h100-qwen1.5-0.5b-hf-sdpa.json.gz"
MI300X = "mi300x-qwen1.5-0.5b-hf-sdpa.json.gz"
V100_DDP = "v100-ddp-training-216k-events.json.gz"
V100_RESNET = "v100-resnet-training.pt.trace.json.gz"
CPU_ONLY = "cpu-only.pt.trace.json.gz"
TIMESFORMER = "h100-timesformer-eager-attention.json.gz"
RESNET_ROCM = "mi300x-resnet-training-rocm.json.gz"
OWLV2 = "mi300x-owlv2-eager-attention.json.gz"
FLUX = "mi300x-xdit-flux-sageattention.json.gz"

# Too big to commit (3-4 MB each): only ../shared/fixtures has them, so their tests are slow-lane tests
# and `pytest -m "not slow"` needs nothing outside the repository.
SHARED_ONLY = frozenset({V100_DDP, OWLV2, FLUX})


def in_ci() -> bool:
    """CI sets ``CI=true`` (GitHub Actions, GitLab and ``.ci/run`` do): a missing fixture there is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def fixture_path(name: str) -> Path:
    """A real foreign trace, read in place: from tests/data/foreign, else ../shared/fixtures/foreign.

    A missing file never passes quietly: under CI it fails the test, elsewhere the test skips with
    a reason that names the file and both places it was looked for.
    """
    for folder in FIXTURE_DIRS:
        p = folder / name
        if p.is_file():
            return p
    where = " or ".join(str(d) for d in FIXTURE_DIRS)
    reason = f"MISSING FIXTURE {name}: not in {where}; the test did not run"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def fixture_param(name: str) -> Any:
    """A fixture name as a ``parametrize`` value, in the slow lane where only ../shared has the file."""
    return pytest.param(name, marks=pytest.mark.slow) if name in SHARED_ONLY else name


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``tracekit`` command in a subprocess."""
    full_env = {**os.environ, "KINETO_LOG_LEVEL": "5", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tracekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def capture(out: Path, contexts: list[int], tokens: int, **kw: object) -> Path:
    """A real capture through the library, as ``tracekit capture`` makes it."""
    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture
    from tracekit.perfetto.export import enrich_context

    opts = CaptureOptions(**{k: v for k, v in kw.items() if k in CaptureOptions.__dataclass_fields__})  # type: ignore[arg-type]
    sweep_kw = {k: v for k, v in kw.items() if k in SweepOptions.__dataclass_fields__}
    sweep = SweepOptions(contexts=contexts, tokens=tokens, out=out, **sweep_kw)  # type: ignore[arg-type]
    return run_capture(opts, sweep, after_context=enrich_context if kw.get("enrich", True) else None)


def chromium() -> str:
    """The real headless browser the HTML tests drive; a skip that says how to install it if absent."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed ('make chromium' installs Debian's chromium)")
    return exe


def _chromium_run(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # A fresh profile per test and no background traffic: the pages need no network.
    base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([chromium(), *base, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)


def screenshot(page: Path, width: int, height: int, profile: Path) -> Any:
    """A headless-chromium screenshot of ``page`` in a ``width`` x ``height`` window, as an RGB
    PIL image (written beside the page, as ``<page>.png``)."""
    from PIL import Image

    shot = page.with_suffix(".png")
    r = _chromium_run(page, profile, f"--screenshot={shot}", f"--window-size={width},{height}")
    assert shot.exists(), r.stderr[-2000:]
    return Image.open(shot).convert("RGB")


def dump_dom(page: Path, profile: Path, *flags: str) -> tuple[str, list[str]]:
    """The DOM chromium built from ``page`` after load, and the console lines it logged."""
    r = _chromium_run(page, profile, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom")
    return r.stdout, [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]


def assert_not_blank(img: Any) -> None:
    """The screenshot shows something: a wide range of grey levels, not one flat colour."""
    grey = img.convert("L")
    lo, hi = grey.getextrema()
    assert hi - lo > 100 and sum(1 for n in grey.histogram() if n) > 20, "the screenshot is blank"


def roofline_pixels(html_text: str, tmp: Path) -> tuple[int, int, int]:
    """The roofline plot of a report page, alone in an 800x560 window: how many pixels are red
    (attention, #d62728), blue (GEMMs, #1f77b4) and dark (the roof, axes, text)."""
    import numpy as np

    start = html_text.index('<div class="plot" id="plot-roofline">')
    end = html_text.index("</svg>", start) + len("</svg>")
    alone = tmp / "roofline.html"
    alone.write_text(f"<!doctype html><html><body style='margin:0'>{html_text[start:end]}</div></body></html>")
    px = np.asarray(screenshot(alone, 800, 560, tmp / "profile")).astype(int)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    red = int(((r > 180) & (g < 90) & (b < 90)).sum())
    blue = int(((r < 80) & (g > 90) & (g < 150) & (b > 150)).sum())
    dark = int(((r < 60) & (g < 60) & (b < 60)).sum())
    return red, blue, dark


def sampled_context(n: int, ms: float, share: float, noise: float, rng: Any, share_noise: float | None = None) -> Any:
    """A context built from hand-made per-round samples (4 rounds of 20 steps; each round shifted as
    a whole, as a load burst shifts a real one), its medians and intervals computed as for a real
    run. Attention shares vary by ``share_noise`` per round and half that per step (None: 0.005
    per step only); the categories are attention and gemm."""
    import numpy as np

    from tracekit.report.model import ContextFigures
    from tracekit.report.uncertainty import draw_decode, draw_share

    rounds = [list(ms + rng.normal(0, noise) + rng.normal(0, noise / 2, 20)) for _ in range(4)]
    if share_noise is None:
        shares = [list(np.clip(share + rng.normal(0, 0.005, 4), 0, 1)) for _ in range(4)]
    else:
        shares = [
            list(np.clip(share + rng.normal(0, share_noise) + rng.normal(0, share_noise / 2, 4), 0, 1))
            for _ in range(4)
        ]
    c = ContextFigures(
        context_tokens=n, status="ok", prefill_s=0.1, prefill_s_unsynced=0.1, decode_samples_ms=rounds,
        attention_share_samples=shares,
    )  # fmt: skip
    draw_decode(c)
    draw_share(c)
    assert c.decode_ms_per_token is not None and c.attention_ms_per_token is not None
    c.categories_ms_per_token = {
        "attention": c.attention_ms_per_token,
        "gemm": c.decode_ms_per_token - c.attention_ms_per_token,
    }
    return c


# --- HF generate() traces on the CPU (the session fixture hf_traces records them once) ------------

GENERATE_SCRIPT = r"""
import sys, torch
from pathlib import Path
from torch.profiler import profile, ProfilerActivity
from tracekit.capture.backends.hf_load import import_transformers, preset_config

tf = import_transformers()
torch.manual_seed(0)
torch.set_num_threads(1)
out, new = Path(sys.argv[1]), int(sys.argv[2])
model = tf.AutoModelForCausalLM.from_config(preset_config("tiny"), attn_implementation="sdpa").eval()
with torch.inference_mode():
    for item in sys.argv[3:]:
        ctx, batch = (int(x) for x in item.split("x"))
        prompt = torch.randint(1, 100, (batch, ctx))
        model.generate(prompt[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=0)  # warm-up
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_stack=True) as prof:
            model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
        folder = out / ("sweep" if batch > 1 else "single")
        folder.mkdir(exist_ok=True)
        prof.export_chrome_trace(str(folder / f"generate-{ctx:05d}x{batch}.json"))
"""

HF_CONTEXTS = [64, 2000, 4000]  # prompt lengths of the sweep, each a batch of HF_BATCH requests
HF_BATCH = 4
HF_SINGLE = 2000  # one request: its KV tokens rise by one a step
HF_NEW = 8


def generate_traces(out: Path) -> Path:
    """Real ``model.generate()`` traces of the hf backend's tiny preset (random weights, no
    download) recorded with record_shapes and with_stack, in a subprocess: ``out/single/`` one
    request of HF_SINGLE tokens, ``out/sweep/`` a batch of HF_BATCH requests per prompt length (a
    batch makes attention's growth stand out of a busy 2-core machine's noise)."""
    pytest.importorskip("transformers", reason="needs the [hf] extra")
    script = out / "generate.py"
    script.write_text(GENERATE_SCRIPT)
    items = [f"{HF_SINGLE}x1", *(f"{c}x{HF_BATCH}" for c in HF_CONTEXTS)]
    r = subprocess.run(
        [sys.executable, str(script), str(out), str(HF_NEW), *items],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    script.unlink()
    return out


def edit_manifest(run: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    """Rewrite a run's manifest.json through ``edit`` (a hostile or odd manifest, made by hand)."""
    m = run / "manifest.json"
    d = json.loads(m.read_text())
    edit(d)
    m.write_text(json.dumps(d))

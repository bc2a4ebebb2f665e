"""Headless Chromium for the report tests: render HTML files to PNG (and PDF), and read a PNG back with the
standard library's zlib (plus numpy, a haplomatch dependency) — no Pillow.

Debian's ``chromium`` (``apt-get install -y chromium``); tests skip when it is absent. Each run gets its own
``--user-data-dir`` so runs can go in parallel and nothing of the user's profile is touched; network features
are off, and the report's Content-Security-Policy blocks any fetch anyway. Console messages (script errors,
blocked loads) are captured with ``--enable-logging=stderr`` and returned, so a test can require none.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0")


def chromium() -> str | None:
    return shutil.which("chromium")


@dataclass
class Run:
    html: Path
    out: Path
    returncode: int
    stderr: str

    @property
    def console(self) -> list[str]:
        """The page's console messages (JavaScript errors, Content-Security-Policy violations, failed loads)."""
        return [ln for ln in self.stderr.splitlines() if ":CONSOLE" in ln]


def render(jobs: list[tuple[Path, Path]], *, window: tuple[int, int] = (1200, 1800), timeout: float = 90) -> list[Run]:
    """Render each (html, output) pair with Chromium, all at once (one process each). The output's suffix
    chooses the kind: ``.png`` a screenshot of the window, ``.pdf`` the page printed (print CSS).

    A headless Chromium now and then hangs on start-up (seen once in CI: killed after the timeout with
    nothing rendered); such a job is run once more, alone. Any other failure is returned as it is."""
    runs = _render(jobs, window, timeout)
    for k, run in enumerate(runs):
        if run.returncode == -9 and not run.out.exists():
            runs[k] = _render([(run.html, run.out)], window, timeout)[0]
    return runs


def _render(jobs: list[tuple[Path, Path]], window: tuple[int, int], timeout: float) -> list[Run]:
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    procs = []
    with tempfile.TemporaryDirectory(prefix="haplomatch-chromium-") as tmp:
        for i, (html, out) in enumerate(jobs):
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():
                out.unlink()
            what = f"--print-to-pdf={out}" if out.suffix == ".pdf" else f"--screenshot={out}"
            cmd = [exe, *FLAGS, f"--user-data-dir={Path(tmp) / str(i)}", what, f"--window-size={window[0]},{window[1]}"]
            if out.suffix == ".pdf":
                cmd.append("--no-pdf-header-footer")
            cmd.append(Path(html).resolve().as_uri())
            procs.append((html, out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        runs = []
        for html, out, p in procs:
            try:
                _, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            runs.append(Run(Path(html), out, p.returncode, err))
    return runs


# -- PNG ---------------------------------------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    """Pixels (height, width, channels) of an 8-bit, non-interlaced PNG (grey, grey+alpha, RGB, RGBA)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise ValueError(f"{path}: no IHDR chunk")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or interlace or ctype not in (0, 2, 4, 6):
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are read here")
    bpp = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ValueError(f"{path}: image data is {len(raw)} bytes, expected {h * (stride + 1)}")
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        start = y * (stride + 1)
        f = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if f == 0:  # None
            cur = line.copy()
        elif f == 1:  # Sub: a running sum per channel
            cur = (np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.int64) % 256).astype(np.uint8).reshape(-1)
        elif f == 2:  # Up
            cur = line + prev
        elif f in (3, 4):  # Average, Paeth: sequential along the row
            cur = np.frombuffer(_unfilter_row(f, line.tobytes(), prev.tobytes(), bpp), dtype=np.uint8)
        else:
            raise ValueError(f"{path}: unknown filter {f} in row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)


def _unfilter_row(f: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    cur, up, n = list(line), list(prev), len(line)
    if f == 3:  # Average
        for i in range(n):
            cur[i] = (cur[i] + (((cur[i - bpp] if i >= bpp else 0) + up[i]) >> 1)) & 255
        return bytes(cur)
    for i in range(bpp):  # Paeth, first pixel: the left and upper-left bytes are 0
        cur[i] = (cur[i] + up[i]) & 255
    for i in range(bpp, n):
        a, b, c = cur[i - bpp], up[i], up[i - bpp]
        pa, pb = b - c, a - c
        pc = pa + pb
        pa, pb, pc = (pa if pa >= 0 else -pa), (pb if pb >= 0 else -pb), (pc if pc >= 0 else -pc)
        cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return bytes(cur)


@dataclass
class PngSummary:
    width: int
    height: int
    colours: int  # distinct colours (RGB, over every pixel)
    dominant_share: float  # share of the most common colour
    ink_share: float  # share of pixels clearly darker than the page background


def summarise(path: Path) -> PngSummary:
    px = read_png(path)[..., :3]
    h, w = px.shape[:2]
    flat = px.reshape(-1, px.shape[-1]).astype(np.uint32)
    keys = flat[:, 0] << 16 | (flat[:, 1] << 8 if flat.shape[1] > 1 else 0) | (flat[:, 2] if flat.shape[1] > 2 else 0)
    _, counts = np.unique(keys, return_counts=True)
    ink = (flat.mean(axis=1) < 160).mean()
    return PngSummary(w, h, len(counts), float(counts.max() / counts.sum()), float(ink))

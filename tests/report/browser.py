"""Drive a real headless Chromium through chromedriver's W3C WebDriver HTTP protocol (httpx).

``HeadlessChromium.start(tmp_dir)`` starts ``chromedriver`` on a free loopback port and opens a
session; ``open(url)``, ``run(js)``, ``console_errors()`` (the browser log at SEVERE) and
``screenshot_png()`` are all the report tests need. :func:`png_pixel_stats` decodes a PNG with
``zlib`` and ``struct`` only.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-dev-shm-usage", "--window-size=1280,2000"]


def find_chromium() -> tuple[str, str] | None:
    """Paths of (chromium, chromedriver), or None when either is absent."""
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chrome, driver) if chrome and driver else None


@dataclass
class HeadlessChromium:
    driver: subprocess.Popen
    base: str
    session: str
    http: httpx.Client

    @classmethod
    def start(cls, tmp_dir: Path, chrome: str, driver: str) -> "HeadlessChromium":
        port = free_port()
        log = (tmp_dir / "chromedriver.log").open("wb")
        proc = subprocess.Popen([driver, f"--port={port}", "--allowed-ips=127.0.0.1"], stdout=log, stderr=log)
        base, http = f"http://127.0.0.1:{port}", httpx.Client(timeout=60)
        _wait_ready(http, base, proc)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": chrome,
                                       "args": CHROME_ARGS + [f"--user-data-dir={tmp_dir / 'profile'}"]}}
        resp = http.post(f"{base}/session", json={"capabilities": {"alwaysMatch": caps}})
        if resp.status_code != 200:
            proc.terminate()
            raise RuntimeError(f"chromedriver refused a session: {resp.text[:500]}")
        return cls(proc, base, resp.json()["value"]["sessionId"], http)

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        resp = self.http.request(method, f"{self.base}/session/{self.session}{path}", json=body)
        value = resp.json().get("value")
        if resp.status_code != 200:
            raise RuntimeError(f"webdriver {path}: {value}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def run(self, script: str) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": []})

    def console_errors(self) -> list[str]:
        entries = self._call("POST", "/se/log", {"type": "browser"})
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]

    def screenshot_png(self) -> bytes:
        return base64.b64decode(self._call("GET", "/screenshot"))

    def stop(self) -> None:
        try:
            self.http.delete(f"{self.base}/session/{self.session}")
        finally:
            self.http.close()
            self.driver.terminate()
            self.driver.wait(timeout=10)


def _wait_ready(http: httpx.Client, base: str, proc: subprocess.Popen, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {proc.returncode}")
        try:
            if http.get(f"{base}/status").json()["value"]["ready"]:
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"chromedriver not ready after {timeout_s}s")


def _unfilter(rows: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride, out, prev = width * bpp, [], bytes(width * bpp)
    for y in range(height):
        kind, line = rows[y * (stride + 1)], bytearray(rows[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line))
        prev = line
    return out


def png_pixel_stats(png: bytes) -> tuple[int, int, int, float]:
    """(width, height, distinct grey levels, grey-level variance) of an 8-bit RGB/RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unsupported PNG: depth {depth}, colour type {colour}"
    bpp = 3 if colour == 2 else 4
    lines = _unfilter(zlib.decompress(idat), width, height, bpp)
    greys = [sum(line[i:i + 3]) // 3 for line in lines[::4] for i in range(0, width * bpp, bpp * 4)]
    mean = sum(greys) / len(greys)
    return width, height, len(set(greys)), sum((g - mean) ** 2 for g in greys) / len(greys)

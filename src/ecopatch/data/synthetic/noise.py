"""Deterministic hash noise: textures and sensor noise as pure functions of position and seed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------
# Deterministic hash noise
# ---------------------------------------------------------------------------

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_INV53 = 1.0 / 9007199254740992.0


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> _S30)) * _M2
    z = (z ^ (z >> _S27)) * _M3
    return z ^ (z >> _S31)


def hash_key(seed: int, stream: int) -> np.uint64:
    """The 64-bit key of the hash stream ``stream`` of ``seed``."""
    with np.errstate(over="ignore"):
        s = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        t = np.array([stream & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        return _mix(_mix(s * _M1) ^ (t * _M3 + _M2))[0]


def hash_u01(key: np.uint64, a: Any, b: Any) -> np.ndarray:
    """Uniform [0, 1) from the integer pair (a, b) (broadcast), a pure function of ``key``."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(a, dtype=np.int64).astype(np.uint64) * _M1 ^ key)
        h = _mix(h ^ (np.asarray(b, dtype=np.int64).astype(np.uint64) * _M2))
    return (h >> _S11).astype(np.float64) * _INV53


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


class Noise:
    """Hash-based value noise and fBm, functions of world position (metres)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _octave_key(self, stream: int, octave: int) -> np.uint64:
        return hash_key(self.seed, stream * 64 + octave)

    def grid(self, xs: np.ndarray, ys: np.ndarray, wl: float, octaves: int, stream: int,
             gain: float = 0.5) -> np.ndarray:
        """Fractal noise (fBm) on the separable grid ``ys`` (rows) × ``xs`` (cols); about [-1, 1]."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        out = np.zeros((ys.size, xs.size))
        total = 0.0
        amp = 1.0
        for o in range(octaves):
            w = wl / (2.0**o)
            key = self._octave_key(stream, o)
            gx = xs / w
            gy = ys / w
            ix = np.floor(gx)
            iy = np.floor(gy)
            u = _fade(gx - ix)[None, :]
            v = _fade(gy - iy)[:, None]
            ix = ix.astype(np.int64)
            iy = iy.astype(np.int64)
            x0, y0 = int(ix.min()), int(iy.min())
            lx = np.arange(x0, int(ix.max()) + 2)
            ly = np.arange(y0, int(iy.max()) + 2)
            lat = hash_u01(key, lx[None, :], ly[:, None]) * 2.0 - 1.0
            ci = ix - x0
            ri = iy - y0
            a = lat[np.ix_(ri, ci)]
            b = lat[np.ix_(ri, ci + 1)]
            c = lat[np.ix_(ri + 1, ci)]
            d = lat[np.ix_(ri + 1, ci + 1)]
            top = a + (b - a) * u
            bot = c + (d - c) * u
            out += amp * (top + (bot - top) * v)
            total += amp
            amp *= gain
        return out / total

    def points(self, x: np.ndarray, y: np.ndarray, wl: float, octaves: int, stream: int,
               gain: float = 0.5) -> np.ndarray:
        """Fractal noise (fBm) at arbitrary points (same values as :meth:`grid` at the same coordinates)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        out = np.zeros(np.broadcast(x, y).shape)
        total = 0.0
        amp = 1.0
        for o in range(octaves):
            w = wl / (2.0**o)
            key = self._octave_key(stream, o)
            gx = x / w
            gy = y / w
            ix = np.floor(gx)
            iy = np.floor(gy)
            u = _fade(gx - ix)
            v = _fade(gy - iy)
            ix = ix.astype(np.int64)
            iy = iy.astype(np.int64)
            a = hash_u01(key, ix, iy) * 2 - 1
            b = hash_u01(key, ix + 1, iy) * 2 - 1
            c = hash_u01(key, ix, iy + 1) * 2 - 1
            d = hash_u01(key, ix + 1, iy + 1) * 2 - 1
            top = a + (b - a) * u
            bot = c + (d - c) * u
            out += amp * (top + (bot - top) * v)
            total += amp
            amp *= gain
        return out / total

    def cells(self, x: np.ndarray, y: np.ndarray, size: tuple[float, float], angle_deg: float,
              stream: int) -> np.ndarray:
        """Uniform [0, 1) constant on a rotated lattice of ``size`` (m) cells (field parcels)."""
        t = math.radians(angle_deg)
        u = x * math.cos(t) + y * math.sin(t)
        v = -x * math.sin(t) + y * math.cos(t)
        return hash_u01(hash_key(self.seed, stream), np.floor(u / size[0]), np.floor(v / size[1]))

    def normal(self, stream: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Standard normal per global pixel (Box-Muller on two hashes)."""
        u1 = hash_u01(hash_key(self.seed, stream * 2 + 1), rows, cols)
        u2 = hash_u01(hash_key(self.seed, stream * 2 + 2), rows, cols)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

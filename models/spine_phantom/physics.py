"""MR signal equations and the per-series rendering of tissue label maps.

Each sequence has its own physics: spin echo ``S = PD (1 - e^{-TR/T1}) e^{-TE/T2}``;
STIR multiplies by the inversion term ``|1 - 2 e^{-TI/T1} + e^{-TR/T1}|`` instead of
the saturation term, so fat (T1 ~ 260 ms) nulls at TI ~ 180 ms by itself; Dixon
water images keep ``(1 - fat fraction)`` of the signal; post-contrast T1 shortens
T1 of enhancing tissue (``1/T1' = 1/T1 + r1 C``) and is fat-suppressed.

A label map is turned into an image by a lookup table (one signal per tissue),
tissue texture, a little partial-volume blur, a receive-coil bias field, Rician
noise and 12-bit quantisation. All of it is vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tissues import property_arrays

R1_GD = 4.5  # relaxivity of a gadolinium agent at 1.5 T, 1/(mM s)


@dataclass(frozen=True)
class Protocol:
    """Acquisition parameters of one series (they go into the DICOM header too)."""

    sequence: str          # spinefm.sequences type: T1, T2, STIR, DIXON, OTHER, LOCALIZER
    kind: str              # se, stir, dixon_water, t1_post_fs; localizers: gre (spoiled) or ssfp (balanced)
    tr: float
    te: float
    ti: float | None = None
    echo_train: int = 1
    flip: float = 90.0
    contrast: bool = False

    @property
    def scanning_sequence(self) -> str:
        return {"stir": "SE\\IR", "gre": "GR", "ssfp": "GR"}.get(self.kind, "SE")

    @property
    def sequence_variant(self) -> str:
        return {"stir": "SK\\SP\\MP", "gre": "SP", "ssfp": "SS"}.get(self.kind, "SK\\SP")

    @property
    def scan_options(self) -> str:
        if self.kind == "stir":
            return "IR"
        if self.kind == "t1_post_fs":
            return "FS"
        return ""


def tissue_signals(protocol: Protocol) -> np.ndarray:
    """Noise-free signal of every tissue label for this protocol (float64 LUT)."""
    p = property_arrays()
    pd, t1, t2, fat = p["pd"], p["t1"], p["t2"], p["fat"]
    if protocol.kind == "t1_post_fs":
        t1 = 1.0 / (1.0 / t1 + R1_GD * p["enhance"] / 1000.0)
    if protocol.kind == "stir":
        longitudinal = np.abs(1 - 2 * np.exp(-protocol.ti / t1) + np.exp(-protocol.tr / t1))
    elif protocol.kind == "gre":  # spoiled gradient echo steady state (Ernst), T2 standing in for T2*
        e1, a = np.exp(-protocol.tr / t1), np.deg2rad(protocol.flip)
        longitudinal = np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)
    elif protocol.kind == "ssfp":  # balanced steady state: T2/T1 contrast, fluid and fat bright
        a = np.deg2rad(protocol.flip)
        longitudinal = np.sin(a) / ((t1 / t2 + 1) - np.cos(a) * (t1 / t2 - 1))
    else:
        longitudinal = 1 - np.exp(-protocol.tr / t1)
    s = pd * longitudinal * np.exp(-protocol.te / t2)
    if protocol.kind == "dixon_water":
        s = s * (1 - fat)
    elif protocol.kind == "t1_post_fs":
        s = s * (1 - 0.9 * fat)
    return s


def texture_amplitudes() -> np.ndarray:
    return property_arrays()["texture"]


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise upsampled bilinearly (cheap)."""
    rows, cols = shape
    g = rng.standard_normal((cells + 1, cells + 1))
    ri = np.linspace(0, cells, rows)
    ci = np.linspace(0, cells, cols)
    r0 = np.minimum(ri.astype(int), cells - 1)
    c0 = np.minimum(ci.astype(int), cells - 1)
    fr = (ri - r0)[:, None]
    fc = (ci - c0)[None, :]
    top = g[r0][:, c0] * (1 - fc) + g[r0][:, c0 + 1] * fc
    bot = g[r0 + 1][:, c0] * (1 - fc) + g[r0 + 1][:, c0 + 1] * fc
    f = top * (1 - fr) + bot * fr
    return f / (np.abs(f).max() + 1e-9)


def blur121(stack: np.ndarray) -> np.ndarray:
    """Separable [1 2 1]/4 blur over the last two axes: partial-volume softening of edges."""
    a = stack
    b = a * np.float32(2.0)
    b[..., 1:, :] += a[..., :-1, :]
    b[..., :-1, :] += a[..., 1:, :]
    b[..., 0, :] += a[..., 0, :]
    b[..., -1, :] += a[..., -1, :]
    c = b * np.float32(2.0 / 16.0)
    b *= np.float32(1.0 / 16.0)
    c[..., :, 1:] += b[..., :, :-1]
    c[..., :, :-1] += b[..., :, 1:]
    c[..., :, 0] += b[..., :, 0]
    c[..., :, -1] += b[..., :, -1]
    return c


def render_stack(labels: np.ndarray, protocol: Protocol, rng: np.random.Generator, *,
                 texture: np.ndarray, bias: np.ndarray, snr: float, gain: float,
                 max_value: int = 4095) -> np.ndarray:
    """Label stack [n, rows, cols] -> uint16 12-bit image stack for one series.

    ``texture`` is a [n, rows, cols] (or broadcastable) field in [-1, 1]; ``bias``
    a [rows, cols] multiplicative coil-sensitivity field; ``snr`` relative to the
    brightest tissue; ``gain`` scales to the vendor's typical 12-bit range.
    Noise is Rician: the magnitude of signal plus complex Gaussian noise. Values are clipped to
    ``max_value`` (12-bit by default; 65535 for scanners that scale into 16 bits).
    """
    lut = tissue_signals(protocol).astype(np.float32)
    tex_lut = lut * texture_amplitudes().astype(np.float32)
    s = tex_lut[labels]
    s *= texture
    s += lut[labels]
    s = blur121(s)
    s *= bias
    sigma = float(lut.max()) / snr
    noise = rng.standard_normal(s.shape, dtype=np.float32)
    noise *= sigma
    s += noise
    np.square(s, out=s)
    # the quadrature channel: the same white noise taken from the neighbouring slice (independent pixels)
    imag = np.roll(noise, 1, axis=0) if s.shape[0] > 1 else np.roll(noise, 1, axis=-1)
    np.square(imag, out=imag)
    s += imag
    np.sqrt(s, out=s)
    s *= gain / float(lut.max())
    np.clip(s, 0, max_value, out=s)
    return s.astype(np.uint16)

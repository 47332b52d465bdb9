"""Seeded synthetic Giemsa-like smears with ground truth, for tests and the demo model.

Why synthetic: tests and the demo must run on a fresh clone with no patient data.
Every image is a pure function of its seed and arguments (NumPy + OpenCV only).

How an image is made: stains absorb light, so each object adds optical density
(OD, per RGB channel) and the picture is ``background × exp(-OD)``. Overlapping
cells therefore look darker where they overlap, as on a real slide.

* Red cells: pale pink discs, thicker at the rim than in the middle (central pallor).
* White cells of the image's class (``ml.labels.SUBTYPES``):
  ``Benign``: small mature lymphocytes, dense round nucleus with coarse chromatin
  and a thin rim of cytoplasm; ``Early``: blasts, fine chromatin, very high N:C,
  round nucleus, at most one faint nucleolus; ``Pre``: larger blasts, indented
  nucleus, one or two nucleoli; ``Pro``: the largest blasts, very irregular
  nucleus, several prominent nucleoli, deep-blue cytoplasm.
  The background tint and stain strength are drawn the same way for every class,
  so a model cannot learn the class from colour alone.
* A few platelets (small purple specks), noise and a slight blur.

Cells lie fully inside the frame; some touch or overlap a little, so counting
needs the watershed split. The instance map gives each cell its own id; where
cells overlap the one drawn later (on top) owns the pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ml.labels import SUBTYPES

DEFAULT_PIXELS_PER_MICRON = 4.0


@dataclass(frozen=True)
class _WbcMorphology:
    """Class-dependent look of the white cells (sizes in µm)."""

    cell_diameter: tuple[float, float]
    nc_ratio: tuple[float, float]  # nucleus radius / cell radius
    irregularity: float  # amplitude of the nuclear outline's harmonics
    chromatin_coarseness: float  # 0 = fine, 1 = clumped
    nucleus_od: float  # stain density of the nucleus
    nucleoli: tuple[int, int]  # min, max count
    cytoplasm_od: tuple[float, float, float]
    blast: bool


MORPHOLOGY: dict[str, _WbcMorphology] = {
    "Benign": _WbcMorphology((8.0, 10.0), (0.80, 0.88), 0.03, 1.0, 1.25, (0, 0), (0.22, 0.16, 0.04), False),
    "Early": _WbcMorphology((10.5, 12.5), (0.86, 0.92), 0.05, 0.25, 0.95, (0, 1), (0.30, 0.20, 0.05), True),
    "Pre": _WbcMorphology((12.0, 14.5), (0.76, 0.84), 0.12, 0.2, 0.9, (1, 2), (0.34, 0.22, 0.05), True),
    "Pro": _WbcMorphology((13.5, 16.5), (0.70, 0.80), 0.22, 0.15, 0.85, (2, 4), (0.48, 0.28, 0.04), True),
}

# Optical density per unit stain (R, G, B): eosin-pink red cells, purple nuclei.
RBC_OD = np.array([0.10, 0.42, 0.26], np.float32)
NUCLEUS_OD = np.array([0.75, 1.05, 0.22], np.float32)
PLATELET_OD = np.array([0.45, 0.65, 0.15], np.float32)


@dataclass
class SyntheticSmear:
    image: np.ndarray  # H×W×3 uint8
    label: str  # one of SUBTYPES
    cell_labels: np.ndarray  # H×W int32 instance map of all cells (ground truth)
    kinds: dict[int, str]  # instance id -> "rbc" | "wbc" | "platelet"
    counts: dict[str, int]  # {"rbc": .., "wbc": .., "blast": .., "platelet": ..}
    pixels_per_micron: float = DEFAULT_PIXELS_PER_MICRON
    blast_ids: set[int] = field(default_factory=set)  # instance ids of the blasts among the white cells


def _outline(rng: np.random.Generator, amplitude: float, n_harmonics: int = 4) -> list[tuple[float, int, float]]:
    """Random harmonics (amplitude, order, phase) that bend a circle into a cell outline."""
    return [
        (float(rng.normal(0, amplitude / k**0.5)), k, float(rng.uniform(0, 2 * math.pi)))
        for k in range(2, 2 + n_harmonics)
    ]


def _polar_patch(cy: float, cx: float, radius: float, shape: tuple[int, int], angle: float, aspect: float):
    """Slices of the patch around a cell, its normalised radius field and polar angle."""
    h, w = shape
    half = math.ceil(radius * max(aspect, 1.0) * 1.35) + 2
    r0, r1 = max(0, int(cy) - half), min(h, int(cy) + half + 1)
    c0, c1 = max(0, int(cx) - half), min(w, int(cx) + half + 1)
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    ca, sa = math.cos(angle), math.sin(angle)
    u = (dx * ca + dy * sa) / aspect
    v = -dx * sa + dy * ca
    rho = np.sqrt(u * u + v * v) / radius
    theta = np.arctan2(v, u)
    return (slice(r0, r1), slice(c0, c1)), rho, theta


def _boundary(theta: np.ndarray, harmonics: list[tuple[float, int, float]]) -> np.ndarray:
    bend = np.ones_like(theta)
    for amp, k, phase in harmonics:
        bend += amp * np.cos(k * theta + phase)
    return bend


def _soft_inside(rho: np.ndarray, bound: np.ndarray, radius: float) -> np.ndarray:
    """1 inside, 0 outside, with a one-pixel anti-aliased edge."""
    return np.clip((bound - rho) * radius + 0.5, 0.0, 1.0)


def _texture(rng: np.random.Generator, shape: tuple[int, int], grain_px: float) -> np.ndarray:
    """Smooth random field in [-1, 1] with blobs about ``grain_px`` wide (upsampled noise)."""
    h, w = shape
    gh, gw = max(2, int(h / max(grain_px, 1.0))), max(2, int(w / max(grain_px, 1.0)))
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    field_ = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field_ / 2.0, -1.0, 1.0)


def _place(
    rng: np.random.Generator,
    radius: float,
    shape: tuple[int, int],
    placed: list[tuple[float, float, float]],
    min_gap: float,
    tries: int = 60,
) -> tuple[float, float] | None:
    """A centre fully inside the frame whose spacing to every placed cell is ≥ ``min_gap`` × radii."""
    h, w = shape
    margin = radius * 1.15 + 1
    if h <= 2 * margin or w <= 2 * margin:
        return None
    for _ in range(tries):
        cy, cx = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        if all(math.hypot(cy - py, cx - px) >= min_gap * (radius + pr) for py, px, pr in placed):
            return cy, cx
    return None


def make_smear(
    seed: int,
    label: str = "Benign",
    size: tuple[int, int] = (256, 256),
    *,
    pixels_per_micron: float = DEFAULT_PIXELS_PER_MICRON,
    n_wbc: int | None = None,
    rbc_density: float = 0.38,
    n_platelets: int | None = None,
    touching_fraction: float = 0.25,
    noise_std: float = 2.5,
    blur_sigma: float = 0.7,
) -> SyntheticSmear:
    """One synthetic smear of class ``label`` and its ground truth; same seed, same image.

    ``size`` is (height, width). ``rbc_density`` is the share of the frame the red
    cells cover (before overlaps). ``touching_fraction`` of the red cells are placed
    so that they touch or overlap a neighbour slightly.
    """
    if label not in MORPHOLOGY:
        raise ValueError(f"unknown class {label!r}; expected one of {tuple(MORPHOLOGY)}")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ValueError("size must be at least 32×32")
    rng = np.random.default_rng(seed)
    morph = MORPHOLOGY[label]
    ppm = float(pixels_per_micron)

    # Stain and illumination drawn the same way for every class.
    background = np.array([232, 230, 222], np.float32) + rng.normal(0, 6, 3).astype(np.float32)
    stain_gain = float(rng.uniform(0.85, 1.15))
    od = np.zeros((h, w, 3), np.float32)
    labels = np.zeros((h, w), np.int32)
    kinds: dict[int, str] = {}
    blast_ids: set[int] = set()
    placed: list[tuple[float, float, float]] = []

    # White cells first in placement (they are big), drawn last (on top).
    wbc_specs = []
    count_wbc = int(rng.integers(1, 4)) if n_wbc is None else int(n_wbc)
    for _ in range(count_wbc):
        radius = 0.5 * rng.uniform(*morph.cell_diameter) * ppm
        centre = _place(rng, radius, (h, w), placed, 1.05)
        if centre is None:
            continue
        placed.append((centre[0], centre[1], radius))
        wbc_specs.append((centre, radius))

    # Red cells: fill up to the requested coverage; some touch their neighbour.
    rbc_radius_mean = 0.5 * 7.5 * ppm
    target = int(rbc_density * h * w / (math.pi * rbc_radius_mean**2))
    rbc_specs = []
    for _ in range(target):
        radius = rbc_radius_mean * rng.uniform(0.9, 1.1)
        gap = rng.uniform(0.88, 0.97) if rng.random() < touching_fraction else rng.uniform(1.05, 1.3)
        centre = _place(rng, radius, (h, w), placed, gap, tries=25)
        if centre is None:
            continue
        placed.append((centre[0], centre[1], radius))
        rbc_specs.append((centre, radius))

    next_id = 1
    for (cy, cx), radius in rbc_specs:
        aspect = float(rng.uniform(0.92, 1.08))
        sl, rho, theta = _polar_patch(cy, cx, radius, (h, w), float(rng.uniform(0, math.pi)), aspect)
        bound = _boundary(theta, _outline(rng, 0.015, 3))
        inside = _soft_inside(rho, bound, radius)
        r = rho / bound
        # biconcave disc: thick rim, thin pale centre
        thickness = 0.55 + 0.45 * np.clip((r - 0.15) / 0.55, 0, 1) ** 1.5
        thickness *= 1.0 - 0.25 * np.clip((r - 0.85) / 0.15, 0, 1)
        density = inside * thickness * stain_gain * float(rng.uniform(0.9, 1.1))
        od[sl] += density[..., None] * RBC_OD
        labels[sl][inside > 0.5] = next_id
        kinds[next_id] = "rbc"
        next_id += 1

    for (cy, cx), radius in wbc_specs:
        sl, rho, theta = _polar_patch(cy, cx, radius, (h, w), float(rng.uniform(0, math.pi)), float(rng.uniform(0.95, 1.08)))
        cell_bound = _boundary(theta, _outline(rng, 0.03, 3))
        cell = _soft_inside(rho, cell_bound, radius)
        # nucleus: off-centre a little, class-dependent size and outline
        nc = float(rng.uniform(*morph.nc_ratio))
        shift = (1.0 - nc) * 0.5
        ny, nx = rng.normal(0, shift * radius, 2)
        nsl, nrho, ntheta = _polar_patch(cy + ny, cx + nx, radius * nc, (h, w), float(rng.uniform(0, math.pi)), float(rng.uniform(0.95, 1.1)))
        nucleus_bound = _boundary(ntheta, _outline(rng, morph.irregularity, 4))
        nucleus_full = np.zeros((h, w), np.float32)
        nucleus_full[nsl] = _soft_inside(nrho, nucleus_bound, radius * nc)
        nucleus = nucleus_full[sl] * cell
        # chromatin: coarse clumps for mature lymphocytes, fine for blasts
        ph, pw = rho.shape
        grain = (1.2 + 2.5 * morph.chromatin_coarseness) * ppm / 4.0
        chromatin = 1.0 + (0.12 + 0.35 * morph.chromatin_coarseness) * _texture(rng, (ph, pw), grain)
        # nucleoli: pale round spots inside the nucleus
        nucleoli = np.ones((ph, pw), np.float32)
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        y_off, x_off = sl[0].start, sl[1].start
        for _ in range(int(rng.integers(morph.nucleoli[0], morph.nucleoli[1] + 1))):
            ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.5) * radius * nc
            sy, sx = cy + ny + dist * math.sin(ang) - y_off, cx + nx + dist * math.cos(ang) - x_off
            spot_r = rng.uniform(0.6, 1.0) * ppm
            nucleoli *= 1.0 - 0.55 * np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * spot_r**2))
        cyto_od = np.asarray(morph.cytoplasm_od, np.float32)
        wbc_od = (cell - nucleus)[..., None] * cyto_od + (nucleus * chromatin * nucleoli * morph.nucleus_od)[..., None] * NUCLEUS_OD
        # a white cell lies on top: it hides the red cells beneath
        od[sl] = od[sl] * (1.0 - cell[..., None]) + wbc_od * stain_gain
        labels[sl][cell > 0.5] = next_id
        kinds[next_id] = "wbc"
        is_blast = morph.blast
        if is_blast:
            blast_ids.add(next_id)
        next_id += 1

    # Platelets: small purple specks in the gaps.
    count_platelets = int(rng.integers(0, 4)) if n_platelets is None else int(n_platelets)
    for _ in range(count_platelets):
        radius = rng.uniform(0.9, 1.3) * ppm
        centre = _place(rng, radius, (h, w), placed, 1.2)
        if centre is None:
            continue
        placed.append((centre[0], centre[1], radius))
        sl, rho, theta = _polar_patch(centre[0], centre[1], radius, (h, w), 0.0, float(rng.uniform(0.8, 1.2)))
        inside = _soft_inside(rho, _boundary(theta, _outline(rng, 0.1, 3)), radius)
        od[sl] += inside[..., None] * PLATELET_OD * stain_gain
        labels[sl][inside > 0.5] = next_id
        kinds[next_id] = "platelet"
        next_id += 1

    # Keep only ids still visible, so counts equal what the instance map shows.
    visible = set(np.unique(labels).tolist()) - {0}
    kinds = {k: v for k, v in kinds.items() if k in visible}
    blast_ids &= visible

    image = background * np.exp(-od)
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    image += rng.normal(0, noise_std, image.shape).astype(np.float32)
    image = np.clip(image.round(), 0, 255).astype(np.uint8)

    counts = {
        "rbc": sum(v == "rbc" for v in kinds.values()),
        "wbc": sum(v == "wbc" for v in kinds.values()),
        "blast": len(blast_ids),
        "platelet": sum(v == "platelet" for v in kinds.values()),
    }
    return SyntheticSmear(
        image=image, label=label, cell_labels=labels, kinds=kinds, counts=counts,
        pixels_per_micron=ppm, blast_ids=blast_ids,
    )


def write_imagefolder(out_dir: str | Path, n_per_class: int, seed: int = 0, size: tuple[int, int] = (224, 224)) -> Path:
    """Write ``out_dir/<class>/<class>-0001.png`` ... for every class in SUBTYPES; returns ``out_dir``.

    Each image's seed is derived from (seed, class, number), so adding classes or
    images never changes the ones already there.
    """
    if n_per_class < 1:
        raise ValueError("n_per_class must be at least 1")
    root = Path(out_dir)
    for class_index, label in enumerate(SUBTYPES):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(1, n_per_class + 1):
            image_seed = int(np.random.SeedSequence([seed, class_index, number]).generate_state(1)[0])
            smear = make_smear(image_seed, label, size)
            path = folder / f"{label}-{number:04d}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(smear.image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
    return root

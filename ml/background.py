"""White-cell masks, background removal and background swaps: the shortcut test and its remedy.

The Taleqani classes differ in background (stain batch, white balance, red-cell density, the
scale-bar corner), so a classifier can score well without looking at the white cells at all.
This module makes that measurable and trainable away, using the data set's own segmented view
(``all4class_segmented``: the same images with background and red cells blacked out):

* :func:`white_cell_mask` turns a segmented image into a boolean white-cell mask; where the
  segmented view failed (most Pro slides: pale cells, only red-cell rims survive its
  thresholding) :func:`cell_mask` falls back to :func:`purple_mask` on the raw image;
* :func:`remove_cells` paints an image's own white cells out (``cv2.inpaint``, Telea), leaving a
  background of that slide without its cells;
* :func:`paste_cells` puts one image's white cells onto another background (a feathered mask);
* :func:`swap_background` = paste the cells of image A onto image B with B's cells removed;
* :func:`neutral_background` is a synthetic, class-free smear background (flat colour + grain).

The evaluation (``python -m ml evaluate``) asks: with the cells of a Benign image on the
background of a Pre image, does the label stay Benign (``accuracy_background_swap``) or become Pre
(``follows_background``)? Training with ``--background randomise`` shows the model such
composites, so the background stops predicting the class.

All functions take and return H×W×3 uint8 RGB arrays (and H×W bool masks); only NumPy, OpenCV and
scikit-image are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# A pixel of the segmented view is "cell" where its brightest channel exceeds this (the blacked-out
# background is 0-10 in JPEG; pale cells start near 60).
MASK_THRESHOLD = 40
# Connected regions smaller than this share of the image are red-cell rims and specks, not cells.
MIN_CELL_FRACTION = 0.003  # 150 px on a 224-px image; a lymphocyte there is about 600 px
# Below this share of white-cell pixels the mask is a thresholding failure (pale slides): unusable.
MIN_MASK_FRACTION = 0.01
DILATE_PX = 2  # the segmented view cuts cell edges tightly; grow the mask to keep the membrane
# A neutral smear background: the mean of the four classes' background colours on all4class
# (measured on the inpainted training backgrounds), so it favours no class.
NEUTRAL_RGB = (214, 224, 236)


def _disk(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disk of ``radius`` pixels."""
    import cv2

    if radius <= 0:
        return mask.astype(bool)
    return cv2.dilate(mask.astype(np.uint8), _disk(radius)).astype(bool)


def white_cell_mask(segmented: np.ndarray, *, threshold: int = MASK_THRESHOLD,
                    min_cell_fraction: float = MIN_CELL_FRACTION, dilate: int = DILATE_PX) -> np.ndarray:
    """Boolean white-cell mask of a segmented-view image (background black): threshold, open,
    fill holes, drop regions under ``min_cell_fraction`` of the image, grow by ``dilate`` px."""
    import cv2
    from scipy import ndimage

    segmented = np.asarray(segmented)
    bright = ((segmented.max(axis=2) if segmented.ndim == 3 else segmented) > threshold).astype(np.uint8)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, _disk(1))
    bright = ndimage.binary_fill_holes(bright).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    min_size = min_cell_fraction * bright.size
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_size
    return grow_mask(keep[labels], dilate)


def usable_mask(mask: np.ndarray | None, min_fraction: float = MIN_MASK_FRACTION) -> bool:
    """True where the mask holds enough white-cell pixels to swap a background around."""
    return mask is not None and float(np.mean(mask)) >= min_fraction


def segmented_file(relpath: str, segmented_root: Path) -> Path:
    """The segmented-view file of ``relpath`` (same class folder and file name)."""
    return Path(segmented_root) / relpath


def default_segmented_root(data: Path) -> Path | None:
    """``<data>_segmented`` beside the data folder (``all4class`` -> ``all4class_segmented``)."""
    data = Path(data)
    candidate = data.with_name(data.name + "_segmented")
    return candidate if candidate.is_dir() else None


def load_masks(images: Sequence[np.ndarray], relpaths: Sequence[str], segmented_root: Path | None,
               ) -> tuple[list[np.ndarray], dict[str, int]]:
    """One white-cell mask per image (see :func:`cell_mask`) and how many came from each source."""
    from ml.imageio import load_image

    masks: list[np.ndarray] = []
    sources = {"segmented": 0, "colour": 0}
    for image, rel in zip(images, relpaths):
        path = segmented_file(rel, segmented_root) if segmented_root is not None else None
        segmented = load_image(path) if path is not None and path.is_file() else None
        mask, source = cell_mask(image, segmented)
        masks.append(mask)
        sources[source] += 1
    return masks, sources


def remove_cells(image: np.ndarray, mask: np.ndarray, *, radius: int = 7, grow: int = 3) -> np.ndarray:
    """The image with its masked white cells inpainted from the surrounding background."""
    import cv2

    region = grow_mask(mask, grow)
    return cv2.inpaint(np.ascontiguousarray(image), region.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)


def neutral_background(shape: tuple[int, ...], *, colour: Sequence[int] = NEUTRAL_RGB, grain: float = 3.0,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """A flat smear-like background of ``colour`` with a little smooth grain (no cells, no scale bar)."""
    import cv2

    h, w = shape[:2]
    rng = rng or np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.normal(0, grain, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip(np.asarray(colour, np.float32) + noise * 3, 0, 255).astype(np.uint8)


def random_background(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A synthetic background of a random plausible smear colour (for training, not evaluation)."""
    colour = np.asarray(NEUTRAL_RGB, np.float32) + rng.uniform(-25, 25, 3)
    return neutral_background(shape, colour=np.clip(colour, 150, 250), grain=rng.uniform(1, 5), rng=rng)


def paste_cells(cells_image: np.ndarray, mask: np.ndarray, background: np.ndarray,
                *, feather: float = 1.0) -> np.ndarray:
    """``cells_image`` where ``mask`` is set, ``background`` elsewhere, with a softened edge."""
    import cv2

    if background.shape != cells_image.shape:
        background = cv2.resize(background, (cells_image.shape[1], cells_image.shape[0]),
                                interpolation=cv2.INTER_AREA)
    alpha = mask.astype(np.float32)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
    alpha = alpha[..., None]
    out = alpha * cells_image.astype(np.float32) + (1 - alpha) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def swap_background(image: np.ndarray, mask: np.ndarray, donor: np.ndarray, donor_mask: np.ndarray,
                    ) -> np.ndarray:
    """The white cells of ``image`` on the background of ``donor`` (whose own cells are removed)."""
    return paste_cells(image, mask, remove_cells(donor, donor_mask))


def pick_donors(labels: Sequence[int], usable: Sequence[bool], *, seed: int = 0,
                max_per_class: int | None = 40) -> list[int | None]:
    """For each usable image, a random usable image of *another* class (None where none exists).

    Donors are drawn from a random pool of at most ``max_per_class`` images per class (each donor's
    cells are inpainted once, the costly step), so a few hundred test images need ~160 inpaintings.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    ok = np.asarray(usable, dtype=bool)
    if max_per_class is not None:
        pooled = np.zeros_like(ok)
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(ok & (labels == c)))[:max_per_class]
            pooled[members] = True
    else:
        pooled = ok
    donors: list[int | None] = []
    for i, label in enumerate(labels):
        pool = np.flatnonzero(pooled & (labels != label))
        donors.append(int(rng.choice(pool)) if ok[i] and len(pool) else None)
    return donors


def background_swap_set(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                        labels: Sequence[int], *, seed: int = 0) -> dict:
    """The evaluation set: for each image with a usable mask, its cells on a donor of another class
    and on the neutral background.

    Returns ``{"index": [i...], "donor": [j...], "swapped": [...], "neutral": [...],
    "n_unusable": int}`` (lists aligned with ``index``).
    """
    usable = [usable_mask(m) for m in masks]
    donors = pick_donors(labels, usable, seed=seed)
    cleaned: dict[int, np.ndarray] = {}
    out: dict = {"index": [], "donor": [], "swapped": [], "neutral": [], "n_unusable": usable.count(False)}
    for i, j in enumerate(donors):
        if j is None:
            continue
        if j not in cleaned:
            cleaned[j] = remove_cells(images[j], masks[j])
        out["index"].append(i)
        out["donor"].append(j)
        out["swapped"].append(paste_cells(images[i], masks[i], cleaned[j]))
        out["neutral"].append(paste_cells(images[i], masks[i], neutral_background(images[i].shape)))
    return out


class BackgroundRandomiser:
    """Training-time remedy: show each image's white cells on another background.

    With probability ``p_donor`` the background is another training image's (any class, its cells
    inpainted out), with ``p_synthetic`` a random synthetic one, otherwise the image is unchanged.
    Images without a usable mask always stay as they are. Inpainted backgrounds are computed once.
    """

    def __init__(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], *,
                 p_donor: float = 0.5, p_synthetic: float = 0.3, max_donors: int = 300, seed: int = 0):
        self.masks = list(masks)
        self.usable = [usable_mask(m) for m in self.masks]
        rng = np.random.default_rng(seed)
        pool = np.flatnonzero(self.usable)
        pool = rng.permutation(pool)[:max_donors]  # a random (so class-mixed) pool of donor slides
        self.backgrounds = [remove_cells(images[i], self.masks[i]) for i in sorted(pool.tolist())]
        self.p_donor, self.p_synthetic = p_donor, p_synthetic
        self.rng = rng

    def __call__(self, i: int, image: np.ndarray) -> np.ndarray:
        if not self.usable[i]:
            return image
        draw = self.rng.random()
        if draw < self.p_donor and self.backgrounds:
            background = self.backgrounds[int(self.rng.integers(len(self.backgrounds)))]
        elif draw < self.p_donor + self.p_synthetic:
            background = random_background(image.shape, self.rng)
        else:
            return image
        return paste_cells(image, self.masks[i], background)


# Fallback where the segmented view failed (most Pro slides are pale and come out as red-cell
# rims only): Romanowsky-stained white cells are purple (red and blue high, green low), red cells
# and background are grey-blue or pink with green close to the other channels.
PURPLE_THRESHOLD = 40


def purple_mask(image: np.ndarray, *, threshold: float = PURPLE_THRESHOLD,
                min_cell_fraction: float = MIN_CELL_FRACTION, dilate: int = DILATE_PX) -> np.ndarray:
    """White-cell mask from the raw RGB image: ``(R + B) / 2 - G`` above ``threshold``, cleaned
    like :func:`white_cell_mask`. Rougher than the segmented view; used only where that fails."""
    rgb = np.asarray(image, dtype=np.float32)
    purple = (rgb[..., 0] + rgb[..., 2]) / 2 - rgb[..., 1]
    return white_cell_mask(np.clip(purple, 0, 255).astype(np.uint8), threshold=int(threshold),
                           min_cell_fraction=min_cell_fraction, dilate=dilate)


def cell_mask(image: np.ndarray, segmented: np.ndarray | None) -> tuple[np.ndarray, str]:
    """(mask, source) of the white cells of ``image``.

    Where the segmented view is usable its mask is joined with :func:`purple_mask` (the view misses
    some pale or small cells, and a missed cell would stay on a donor background); where it failed
    or is absent, the colour mask alone.
    """
    colour = purple_mask(image)
    if segmented is not None:
        mask = white_cell_mask(segmented)
        if mask.shape != image.shape[:2]:
            import cv2

            mask = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
        if usable_mask(mask):
            return mask | colour, "segmented"
    return colour, "colour"

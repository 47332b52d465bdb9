"""Class names shared by training, inference, the web app and the reports."""

# Folder names of the Taleqani 4-class set, in the order the models use.
SUBTYPES: tuple[str, ...] = ("Benign", "Early", "Pre", "Pro")

DISPLAY_NAMES: dict[str, str] = {
    "Benign": "Benign (hematogone)",
    "Early": "Early Pre-B ALL",
    "Pre": "Pre-B ALL",
    "Pro": "Pro-B ALL",
    "hem": "Normal (hem)",
    "all": "ALL blast",
}

# Binary head: 0 = normal, 1 = ALL.
BINARY_NAMES: tuple[str, str] = ("normal", "ALL")
SUBTYPE_BINARY_MAP: dict[str, int] = {"Benign": 0, "Early": 1, "Pre": 1, "Pro": 1}

# Cell-level blast model (one white-cell crop -> blast or not).
CELL_CLASSES: tuple[str, str] = ("not_blast", "blast")


def display_name(label: str) -> str:
    return DISPLAY_NAMES.get(label, label)

# Cell differential (ml.cells): every white-cell crop gets one of these.
CELL_TYPES: tuple[str, ...] = (
    "blast",
    "hematogone",
    "lymphocyte",
    "neutrophil",
    "monocyte",
    "eosinophil",
    "basophil",
    "immature_granulocyte",
    "erythroblast",
    "platelet",
    "artefact",
)
# Types that count as nucleated white cells in the blast percentage (the denominator).
# Erythroblasts are nucleated but red-cell precursors; platelets and artefacts are not cells counted.
NUCLEATED_WHITE: tuple[str, ...] = tuple(t for t in CELL_TYPES if t not in ("platelet", "artefact", "erythroblast"))

CELL_TYPE_DISPLAY: dict[str, str] = {
    "blast": "Blast",
    "hematogone": "Hematogone (normal B precursor)",
    "lymphocyte": "Lymphocyte",
    "neutrophil": "Neutrophil",
    "monocyte": "Monocyte",
    "eosinophil": "Eosinophil",
    "basophil": "Basophil",
    "immature_granulocyte": "Immature granulocyte",
    "erythroblast": "Erythroblast",
    "platelet": "Platelet",
    "artefact": "Artefact / not a cell",
}
DISPLAY_NAMES.update(CELL_TYPE_DISPLAY)

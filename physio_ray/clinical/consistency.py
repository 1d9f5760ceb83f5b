"""Does a scenario's text agree with what its image is, per the image's upstream class?

Every image here was copied from a labelled public data set; ``manifest.json`` records the
upstream file (``source_file``), whose folder is the upstream class (``COVID``, ``glioma``,
``lung_aca``, BUSI ``benign`` ...). That folder is the most trustworthy statement of what the
picture shows. For each class we list phrases a text about that picture must not affirm
(a "meningioma" finding on a ``glioma`` image, "no masses, BI-RADS 1" on a BUSI ``benign``
lesion) and search them in the scenario's finding, its diagnosis (ICD scenarios) and its key
(treatment scenarios; ICD keys name the *wrong code* on purpose, e.g. ``normal_glioma_code``).

Negation is handled per clause: text is split at ``,;+()`` and everything from a negation cue
(``no``, ``not``, ``without``, ``negative for``) to the end of its clause is *negated*. A rule
phrase that itself starts with a cue (``"no mass"``) is searched in the full text; any other
phrase only in the affirmed parts, so "no infiltrates" never counts as an infiltrate.

These are hand-written rules about upstream classes, not about file names: the same table
would flag a meningioma finding on any glioma image.

Example:
    >>> contradicting_phrases("mri", "glioma", "Enhancing mass with dural tail")
    ('dural tail',)
    >>> contradicting_phrases("xray", "Normal", "Clear lung fields, no infiltrates")
    ()
"""

from __future__ import annotations

import re

__all__ = [
    "CLASS_RULES",
    "LESION_DENIALS",
    "affirmed_text",
    "class_from_source",
    "contradicting_phrases",
    "denies_lesion",
]

_NORMAL_CHEST = ("clear lung", "normal lung", "normal chest", "no infiltrat", "no consolidation", "no opacit")
_NORMAL_LUNG_TISSUE = (
    "benign",
    "normal lung",
    "normal cellular",
    "normal tissue",
    "no malignan",
    "no dysplasia",
    "no atypia",
)
_NORMAL_BRAIN = ("no mass", "no intracranial mass", "normal brain", "no tumor", "no abnormal enhancement")
_NORMAL_BREAST = ("no mass", "no suspicious", "no lesion", "bi-rads 1", "normal breast", "normal tissue")
_LUNG_ABNORMAL = ("consolidation", "opacit", "infiltrat", "pneumonia", "covid", "effusion", "nodule")
_MALIGNANT_TISSUE = ("carcinoma", "squamous", "malignan", "dysplasia", "atypi", "neoplas", "mitotic")
_BRAIN_LESION = ("mass", "tumor", "glioma", "glioblastoma", "meningioma", "pituitary", "enhancing lesion", "dural tail")

# (modality, upstream class) -> phrases that contradict a picture of that class.
CLASS_RULES: dict[tuple[str, str], tuple[str, ...]] = {
    ("xray", "COVID"): ("bacterial", "viral pneumonia", "lobar pneumonia", *_NORMAL_CHEST),
    ("xray", "Viral Pneumonia"): ("covid", "bacterial", *_NORMAL_CHEST),
    ("xray", "Lung_Opacity"): ("covid", *_NORMAL_CHEST),
    ("xray", "Normal"): _LUNG_ABNORMAL,
    ("histopathology", "lung_aca"): ("squamous", *_NORMAL_LUNG_TISSUE),
    ("histopathology", "lung_scc"): ("adenocarcinoma", "gland", *_NORMAL_LUNG_TISSUE),
    ("histopathology", "lung_n"): _MALIGNANT_TISSUE,
    ("histopathology", "colon_aca"): ("lung", *_NORMAL_LUNG_TISSUE),
    ("histopathology", "colon_n"): ("lung", *_MALIGNANT_TISSUE),
    ("mri", "glioma"): ("meningioma", "dural tail", "extra-axial", "pituitary", *_NORMAL_BRAIN),
    ("mri", "meningioma"): ("glioma", "glioblastoma", "pituitary", *_NORMAL_BRAIN),
    ("mri", "pituitary"): ("glioma", "glioblastoma", "meningioma", "dural tail", *_NORMAL_BRAIN),
    ("mri", "notumor"): _BRAIN_LESION,
    ("ultrasound", "benign"): ("malignan", "carcinoma", "bi-rads 4", "bi-rads 5", "bi-rads 6", *_NORMAL_BREAST),
    ("ultrasound", "malignant"): ("benign", "simple cyst", "bi-rads 2", *_NORMAL_BREAST),
    ("ultrasound", "normal"): (
        "mass",
        "cyst",
        "lesion",
        "malignan",
        "carcinoma",
        "bi-rads 2",
        "bi-rads 3",
        "bi-rads 4",
        "bi-rads 5",
        "bi-rads 6",
    ),
}

# Phrases that say "there is no lesion" (checked against a segmentation mask's drawn area), on
# top of any negated clause that names a lesion word ("no masses", "no intracranial mass").
LESION_DENIALS = ("bi-rads 1", "normal breast", "normal brain", "normal lung", "normal tissue")
_LESION_WORDS = re.compile(r"\b(?:mass|masses|lesions?|tumou?rs?|nodules?|suspicious|abnormal)\b")

_CUES = re.compile(r"\b(?:no|not|without|negative for|absence of)\b")
_SPLIT = re.compile(r"[,;+()]")
_NEGATION_PREFIXES = ("no ", "not ", "without ", "negative for ", "absence of ")


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("_", " ")).strip()


def affirmed_text(text: str) -> str:
    """The parts of ``text`` that are not under a negation cue, clause by clause.

    >>> affirmed_text("Normal lung parenchyma, no malignant cells identified")
    'normal lung parenchyma'
    """
    parts = []
    for clause in _SPLIT.split(_normalise(text)):
        cue = _CUES.search(clause)
        kept = (clause[: cue.start()] if cue else clause).strip()
        if kept:
            parts.append(kept)
    return " | ".join(parts)


def _contains(haystack: str, phrase: str) -> bool:
    # Phrase starts at a word start; it may be a stem ("opacit" matches "opacities") but a
    # trailing digit must not continue ("bi-rads 1" does not match "bi-rads 10").
    tail = r"(?![0-9])" if phrase[-1].isdigit() else ""
    return re.search(r"(?<![a-z0-9])" + re.escape(phrase) + tail, haystack) is not None


def contradicting_phrases(modality: str, upstream_class: str, text: str) -> tuple[str, ...]:
    """Rule phrases for ``(modality, upstream_class)`` that ``text`` affirms.

    Args:
        modality: ``xray`` | ``histopathology`` | ``mri`` | ``ultrasound``.
        upstream_class: the class folder of the upstream data set (see :func:`class_from_source`).
        text: a finding, diagnosis or scenario key.

    Returns:
        The contradicting phrases found, in rule order; empty when consistent or when the
        class has no rules.
    """
    rules = CLASS_RULES.get((modality, upstream_class), ())
    full = _normalise(text)
    affirmed = affirmed_text(text)
    found = []
    for phrase in rules:
        hay = full if phrase.startswith(_NEGATION_PREFIXES) else affirmed
        if _contains(hay, phrase):
            found.append(phrase)
    return tuple(dict.fromkeys(found))


def denies_lesion(text: str) -> tuple[str, ...]:
    """What in ``text`` says there is no lesion: negated clauses naming a lesion word, then
    :data:`LESION_DENIALS` phrases.

    >>> denies_lesion("Normal breast tissue, no masses, BI-RADS 1")
    ('no masses', 'bi-rads 1', 'normal breast')
    >>> denies_lesion("Irregular mass, BI-RADS 5")
    ()
    """
    found = []
    for clause in _SPLIT.split(_normalise(text)):
        cue = _CUES.search(clause)
        if cue and _LESION_WORDS.search(clause, cue.end()):
            found.append(clause[cue.start() :].strip())
    full = _normalise(text)
    found += [p for p in LESION_DENIALS if _contains(full, p)]
    return tuple(found)


def class_from_source(modality: str, source_file: str) -> str | None:
    """The upstream class named by a folder of ``source_file``.

    Args:
        modality: decides which class names are known.
        source_file: upstream path, e.g. ``"ultrasound/Dataset_BUSI_with_GT/benign/benign (246)_mask.png"``.

    Returns:
        The class (spelled as in :data:`CLASS_RULES`), or ``None`` when no folder names one.

    >>> class_from_source("xray", "xray/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png")
    'COVID'
    """
    known = {c for (m, c) in CLASS_RULES if m == modality}
    folders = source_file.replace("\\", "/").split("/")[:-1]
    for folder in reversed(folders):
        if folder in known:
            return folder
    return None

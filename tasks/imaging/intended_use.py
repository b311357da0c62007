"""Is this film one the model is meant for? The intended-use gate on the DICOM header, before any pixel is
scored (the image-based out-of-distribution flag of tasks.measure.ood stays the second gate).

The rules are params.yaml's `intended_use` section: the modalities, body parts and views the model was trained
on, and the patients' ages (whole years, both ends included: the Kermany et al. films are of children aged one
to five). A film is refused with a reason that names the rule and never a header value: reasons reach the
audit trail and the result object's text.
"""
from __future__ import annotations

import datetime as dt

from tasks.core.config import IntendedUse

AGE_UNITS = {"D": 365.25, "W": 365.25 / 7, "M": 12, "Y": 1}  # DICOM AS values: nnnD, nnnW, nnnM, nnnY


def age_years(ds) -> float | None:
    """The patient's age in years at the study: PatientAge, else StudyDate - PatientBirthDate; None if unknown."""
    text = str(ds.get("PatientAge", "") or "").strip()
    if len(text) == 4 and text[:3].isdigit() and text[3] in AGE_UNITS:
        return int(text[:3]) / AGE_UNITS[text[3]]
    try:
        born = dt.datetime.strptime(str(ds.PatientBirthDate), "%Y%m%d").date()
        seen = dt.datetime.strptime(str(ds.StudyDate), "%Y%m%d").date()
    except (AttributeError, ValueError):
        return None
    return (seen - born).days / 365.25


def _text(ds, key: str) -> str:
    return str(ds.get(key, "") or "").strip().upper()


def refusal(ds, rules: IntendedUse) -> str | None:
    """Why the film `ds` (a pydicom Dataset, pixels not needed) is outside the intended use, or None."""
    modality = _text(ds, "Modality")
    if modality not in rules.modalities:
        return f"modality is not one of {', '.join(rules.modalities)} (a radiograph)"
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        return "multi-frame image: the model reads one radiograph per instance"
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or _text(ds, "PhotometricInterpretation") not in (
            "MONOCHROME1", "MONOCHROME2", ""):
        return "colour image: the model reads grayscale radiographs"
    part = _text(ds, "BodyPartExamined")
    if part not in rules.body_parts and (part or not rules.allow_missing):
        return f"body part is {'missing' if not part else 'not ' + ' or '.join(rules.body_parts)}"
    view = _text(ds, "ViewPosition")
    if view not in rules.views and (view or not rules.allow_missing):
        return f"view position is {'missing' if not view else 'not ' + ' or '.join(rules.views)} (frontal)"
    age = age_years(ds)
    if age is None:
        return None if rules.allow_missing else "patient age unknown (no PatientAge, birth or study date)"
    low, high = rules.age_years
    if not low <= int(age) <= high:
        return f"patient age outside the {low} to {high} years the model was trained on"
    return None


def describe(rules: IntendedUse) -> str:
    """The rules in one sentence, for the model card and the README."""
    missing = "accepted" if rules.allow_missing else "refused"
    return (f"{' or '.join(rules.modalities)} radiographs of the {' or '.join(rules.body_parts).lower()}, "
            f"{' or '.join(rules.views)} views, one grayscale frame, patients aged {rules.age_years[0]} to "
            f"{rules.age_years[1]} years; a film missing its body part, view or age is {missing}")

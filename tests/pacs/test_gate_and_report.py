"""The intended-use gate on generated headers, and the result SR built with highdicom and read back: what the
reading room decides and writes, without an archive."""
import io
import json

import pydicom
import pytest

from tasks.imaging.intended_use import age_years, refusal
from tasks.pacs import audit
from tasks.pacs.report import Result, build, read
from tests.helpers import defaults
from tests.orthanc import PHI, film

RULES = defaults("intended_use")


def test_a_frontal_chest_film_of_a_child_passes_and_each_rule_refuses_its_own_case():
    assert refusal(film(0), RULES) is None
    assert refusal(film(0, ViewPosition="AP", Modality="DX"), RULES) is None
    cases = {"modality": film(0, Modality="MR"), "multi-frame": film(0, NumberOfFrames=3),
             "colour": film(0, PhotometricInterpretation="RGB", SamplesPerPixel=3),
             "body part is not": film(0, BodyPartExamined="ABDOMEN"),
             "body part is missing": film(0, BodyPartExamined=None),
             "view position is not": film(0, ViewPosition="LL"),
             "view position is missing": film(0, ViewPosition=None),
             "age outside": film(0, PatientAge="034Y"), "age unknown": film(0, PatientAge=None, PatientBirthDate=None)}
    for words, ds in cases.items():
        reason = refusal(ds, RULES)
        assert reason and words in reason, (words, reason)
        assert not any(str(v).lower() in reason.lower() for v in [*PHI.values(), ds.SOPInstanceUID, "ABDOMEN", "034"])
    lenient = RULES.model_copy(update={"allow_missing": True})
    assert refusal(film(0, ViewPosition=None, PatientAge=None, PatientBirthDate=None), lenient) is None
    assert "view position is not" in refusal(film(0, ViewPosition="LATERAL"), lenient)


def test_age_comes_from_patient_age_in_any_unit_else_from_the_dates():
    assert age_years(film(0, PatientAge="018M")) == 1.5
    assert age_years(film(0, PatientAge="005Y")) == 5
    assert round(age_years(film(0, PatientAge=None, PatientBirthDate="20200101", StudyDate="20230101")), 2) == 3.0
    assert age_years(film(0, PatientAge=None, PatientBirthDate=None)) is None
    assert refusal(film(0, PatientAge="011M"), RULES) and refusal(film(0, PatientAge="005Y"), RULES) is None


@pytest.mark.parametrize("result", [Result("pneumonia-classifier", "7", probability=0.8125, threshold=0.41,
                                           in_distribution=True),
                                    Result("pneumonia-classifier", "7", reason="view position is not PA or AP")])
def test_the_result_sr_says_what_was_decided_refers_to_its_film_and_is_the_same_object_when_built_again(result):
    source = film(3)
    sr = build(source, result)
    again = pydicom.dcmread(io.BytesIO(_bytes(sr)))
    got = read(again)
    assert got["model"] == "pneumonia-classifier" and got["version"] == "7"
    assert got["source"] == source.SOPInstanceUID
    assert again.StudyInstanceUID == source.StudyInstanceUID and again.Modality == "SR"
    assert again.SOPInstanceUID == build(source, result).SOPInstanceUID  # a repeated store replaces nothing
    assert again.SOPInstanceUID != build(source, Result("pneumonia-classifier", "8", probability=0.8, threshold=0.4,
                                                        in_distribution=True)).SOPInstanceUID
    assert again.PatientID == PHI["PatientID"]  # the patient module copied, as the standard requires
    if result.reason is None:
        assert got["finding"] == "Present" and got["probability"] == 0.8125 and got["threshold"] == 0.41
        assert got["in_distribution"] is True
    else:
        assert got["finding"] == "Indeterminate" and got["reason"] == result.reason and "probability" not in got


def test_the_audit_trail_appends_and_skips_a_torn_last_line(tmp_path):
    audit.append(tmp_path, [{"instance": "abc", "decision": "scored"}])
    audit.append(tmp_path, [{"instance": "def", "decision": "refused"}])
    with open(tmp_path / audit.FILE, "a") as fh:
        fh.write('{"instance": "gh')  # a pass killed mid-line
    trail = audit.read(tmp_path)
    assert trail.instance.tolist() == ["abc", "def"]
    assert all(json.loads(line)["time"] for line in (tmp_path / audit.FILE).read_text().splitlines()[:2])


def _bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()

"""The result of one film as a DICOM Comprehensive SR, built with highdicom in the spirit of TID 1500 and IHE
AI Results: one measurement group (TID 1501) naming the algorithm (the registered model and version), the
source image, and either the finding (pneumonia present or absent), the calibrated probability, the threshold
and the out-of-distribution flag, or, for a film the model is not meant for, "indeterminate" and the reason.

The SR is a new series in the source's study; its patient and study modules are copied from the source by
highdicom, as the standard requires: nothing about the patient is invented, and none of it leaves the SR.
Its UIDs are derived from the source instance and the model version (`pydicom.uid.generate_uid` with those as
entropy), so the same result built twice is the same object: a store repeated after a killed pass replaces
nothing and adds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.coding import Code

SCHEME = "99PNEUMO"  # a private coding scheme for what no standard code names (the probability, the flag)
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
PROBABILITY = Code("PNEUMO-P", SCHEME, "Calibrated probability of pneumonia")
THRESHOLD = Code("PNEUMO-T", SCHEME, "Operating threshold")
IN_DISTRIBUTION = Code("PNEUMO-OOD", SCHEME, "Image like the training films")
NOT_ASSESSED = Code("PNEUMO-NA", SCHEME, "Reason not assessed")
SERIES_NUMBER = 9901
TITLE = "Pneumonia AI result"


@dataclass(frozen=True)
class Result:
    """What the pass decided for one film: a score (`reason` None) or a refusal with its reason."""
    model: str
    version: str
    reason: str | None = None
    probability: float | None = None
    threshold: float | None = None
    in_distribution: bool | None = None

    @property
    def label(self) -> str | None:
        if self.reason is not None:
            return None
        return "PNEUMONIA" if self.probability >= self.threshold else "NORMAL"


def uids(source, result: Result) -> tuple[str, str, str]:
    """(series, SOP instance, tracking) UIDs of the result: the same for the same source and model version."""
    from pydicom.uid import generate_uid

    key = [result.model, result.version]
    return (generate_uid(entropy_srcs=[str(source.StudyInstanceUID), *key, "series"]),
            generate_uid(entropy_srcs=[str(source.SOPInstanceUID), *key, "result"]),
            generate_uid(entropy_srcs=[str(source.SOPInstanceUID), *key, "tracking"]))


def build(source, result: Result):
    """The Comprehensive SR of `result` for the film `source` (a pydicom Dataset, its header is enough)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    series_uid, sop_uid, tracking_uid = uids(source, result)
    algorithm = hd.sr.AlgorithmIdentification(name=result.model, version=result.version)
    image = hd.sr.SourceImageForMeasurementGroup.from_source_image(source)
    if result.reason is None:
        evaluations = [hd.sr.QualitativeEvaluation(PNEUMONIA, codes.SCT.Present if result.label == "PNEUMONIA"
                                                   else codes.SCT.Absent),
                       hd.sr.QualitativeEvaluation(IN_DISTRIBUTION, codes.SCT.Yes if result.in_distribution
                                                   else codes.SCT.No)]
        measurements = [hd.sr.Measurement(PROBABILITY, float(result.probability), codes.UCUM.NoUnits,
                                          algorithm_id=algorithm),
                        hd.sr.Measurement(THRESHOLD, float(result.threshold), codes.UCUM.NoUnits)]
    else:
        evaluations = [hd.sr.QualitativeEvaluation(PNEUMONIA, codes.SCT.Indeterminate)]
        measurements = None
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier="pneumonia"),
        finding_type=PNEUMONIA, algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=evaluations, source_images=[image])
    if result.reason is not None:  # TID 1501 has no text row for a refusal: the reason follows the evaluation
        group[0].ContentSequence.append(hd.sr.TextContentItem(NOT_ASSESSED, result.reason,
                                                              relationship_type="CONTAINS"))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[result.model, result.version, "device"]), name=result.model,
            model_name=result.version))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=[group])
    header = source.copy()  # the evidence's header is what the SR copies: without the pixels, a fast copy
    if "PixelData" in header:
        del header.PixelData
    return hd.sr.ComprehensiveSR(
        evidence=[header], content=content[0], series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer="pneumonia-mlops", is_complete=True,
        series_description=TITLE)


def read(sr) -> dict:
    """The finding, probability, threshold, flag, model, version and reason an SR of `build` holds (for the
    tests and `pneumonia-pacs` readers), keyed by the concept names above."""
    out: dict = {}

    def walk(items):
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else None
            if item.ValueType == "CODE" and name == PNEUMONIA.value:
                out["finding"] = item.ConceptCodeSequence[0].CodeMeaning
            elif item.ValueType == "CODE" and name == IN_DISTRIBUTION.value:
                out["in_distribution"] = item.ConceptCodeSequence[0].CodeMeaning == "Yes"
            elif item.ValueType == "NUM" and name in (PROBABILITY.value, THRESHOLD.value):
                key = "probability" if name == PROBABILITY.value else "threshold"
                out[key] = float(item.MeasuredValueSequence[0].NumericValue)
            elif item.ValueType == "TEXT" and name == NOT_ASSESSED.value:
                out["reason"] = str(item.TextValue)
            elif item.ValueType == "TEXT" and name == "111001":  # DCM Algorithm Name
                out["model"] = str(item.TextValue)
            elif item.ValueType == "TEXT" and name == "111003":  # DCM Algorithm Version
                out["version"] = str(item.TextValue)
            elif item.ValueType == "IMAGE":
                out["source"] = str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return out

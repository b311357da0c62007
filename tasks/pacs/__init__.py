"""The reading room: films taken from the hospital's archive (PACS) over DICOMweb, checked against the model's
intended use, scored with the served model and stored back as DICOM Structured Reports (`pneumonia-pacs`).

    archive.py       the DICOMweb edge (dicomweb-client): query, retrieve, store; credentials from the environment
    intended_use.py  is this film one the model is meant for? (rules: params.yaml `intended_use`)
    report.py        the result as a Comprehensive SR (highdicom; TID 1500's measurement group)
    ledger.py        what was decided and stored, per model version: exactly once across killed passes
    audit.py         the append-only audit trail (salted hashes, never a UID or a name in clear)
    inbox.py         one pass: new films in, results out
"""

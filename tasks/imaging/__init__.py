"""Films as pixels: decoding (JPEG, PNG, DICOM), the DICOM header and its intended-use gate, preprocessing, the
prepared splits, simulated acquisition shifts and the data preview. Above core only."""

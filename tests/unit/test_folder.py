import zipfile
from pathlib import Path

import pytest

from tasks.sources import folder
from tests.helpers import image_bytes, kaggle_tree


@pytest.mark.parametrize("name, patient", [
    ("person123_bacteria_456.jpeg", "person123"),
    ("person1000_virus_1681.jpeg", "person1000"),
    ("IM-0115-0001.jpeg", "IM-0115"),
    ("IM-0429-0001-0002.jpeg", "IM-0429"),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
    ("DEMO-0007-02.png", "DEMO-0007"),
    ("scan.png", "scan"),
])
def test_patient_id_from_kaggle_names(name, patient):
    assert folder.patient_id(name) == patient


def test_candidates_keep_class_split_and_patient(tmp_path):
    root = kaggle_tree(tmp_path, splits=("train", "test"), patients=2, per_patient=1)
    cands = folder.candidates(root)
    assert len(cands) == 8
    assert {c.source_split for c in cands} == {"train", "test"}
    assert all(c.problem is None for c in cands)
    assert {c.class_name for c in cands} == {"NORMAL", "PNEUMONIA"}


def test_single_split_folder_is_accepted(tmp_path):
    root = kaggle_tree(tmp_path, patients=1, per_patient=1)
    assert [c.source_split for c in folder.candidates(root / "train")] == ["train", "train"]


def test_unknown_class_folder_and_escaping_link_are_flagged(tmp_path):
    root = kaggle_tree(tmp_path, patients=1, per_patient=1)
    (root / "train" / "COVID").mkdir()
    (root / "train" / "COVID" / "x.jpeg").write_bytes(image_bytes(5))
    outside = tmp_path / "secret.jpeg"
    outside.write_bytes(image_bytes(6))
    (root / "train" / "NORMAL" / "IM-9999-0001.jpeg").symlink_to(outside)
    problems = {c.path.split("/")[-1]: c.problem for c in folder.candidates(root) if c.problem}
    assert "unknown class" in problems["x.jpeg"]
    assert "leaves the source folder" in problems["IM-9999-0001.jpeg"]


def test_a_linked_class_folder_outside_and_a_link_loop_are_handled(tmp_path):
    root = kaggle_tree(tmp_path / "src", patients=1, per_patient=1)
    elsewhere = tmp_path / "elsewhere" / "PNEUMONIA"
    elsewhere.mkdir(parents=True)
    (elsewhere / "IM-7777-0001.jpeg").write_bytes(image_bytes(7))
    (root / "test").mkdir()
    (root / "test" / "NORMAL").mkdir()
    (root / "test" / "PNEUMONIA").symlink_to(elsewhere, target_is_directory=True)  # a class folder that leaves
    (root / "train" / "NORMAL" / "loop").symlink_to(root / "train", target_is_directory=True)  # a cycle
    found = {Path(c.path).name: c for c in folder.candidates(root)}
    assert "leaves the source folder" in found["IM-7777-0001.jpeg"].problem
    assert sum(c.problem is None for c in found.values()) == 2  # the two real images, each once


def _kaggle_zip(tmp_path):
    src = kaggle_tree(tmp_path / "src", splits=("train", "val", "test"), patients=1, per_patient=1)
    archive = tmp_path / "chest-xray-pneumonia.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*.jpeg")):
            rel = path.relative_to(src.parent)
            zf.write(path, str(rel))
            zf.write(path, f"chest_xray/chest_xray/{rel.relative_to('chest_xray')}")  # Kaggle's nested copy
            zf.writestr(f"__MACOSX/chest_xray/{rel.parent}/._{path.name}", b"junk")
    return archive


def test_kaggle_zip_nested_copy_and_macosx_junk(tmp_path):
    dest = folder.extract_zip(_kaggle_zip(tmp_path), tmp_path / "out", max_bytes=10**9)
    assert not (dest / "__MACOSX").exists()
    cands = folder.candidates(dest)
    assert len(cands) == 6  # one copy only: 3 splits x 2 classes
    assert {c.source_split for c in cands} == {"train", "val", "test"}


def test_zip_slip_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("chest_xray/train/NORMAL/ok.jpeg", image_bytes(1))
        zf.writestr("../../escaped.jpeg", image_bytes(2))
    with pytest.raises(folder.SourceError, match="zip-slip"):
        folder.extract_zip(archive, tmp_path / "out", max_bytes=10**9)
    assert not (tmp_path.parent / "escaped.jpeg").exists()


def test_a_users_folder_in_the_way_is_never_deleted(tmp_path):
    mine = tmp_path / "out"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(folder.SourceError, match="was not extracted by this pipeline"):
        folder.extract_zip(_kaggle_zip(tmp_path), mine, max_bytes=10**9)
    assert (mine / "notes" / "keep.txt").read_text() == "mine"


def test_a_new_version_of_the_archive_replaces_its_own_extraction_whole(tmp_path):
    archive = _kaggle_zip(tmp_path)
    dest = folder.extract_zip(archive, tmp_path / "out", max_bytes=10**9)
    (dest / "stale.txt").write_text("from the old version")
    with zipfile.ZipFile(archive, "a") as zf:  # the archive changes: size and mtime differ
        zf.writestr("chest_xray/train/NORMAL/IM-0099-0001.jpeg", image_bytes(9))
    dest = folder.extract_zip(archive, tmp_path / "out", max_bytes=10**9)
    assert not (dest / "stale.txt").exists() and (dest / "chest_xray/train/NORMAL/IM-0099-0001.jpeg").exists()
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []  # no half folder left


def test_a_file_that_is_not_a_zip_names_the_file_and_the_fix(tmp_path):
    fake = tmp_path / "chest_xray.zip"
    fake.write_text("this is not a zip")
    with pytest.raises(folder.SourceError, match="chest_xray.zip is not a readable zip archive.*Kaggle zip"):
        folder.extract_zip(fake, tmp_path / "out", max_bytes=10**9)
    assert not (tmp_path / "out").exists()


def test_a_member_that_expands_like_a_zip_bomb_is_refused_before_writing(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chest_xray/train/NORMAL/ok.jpeg", image_bytes(1))
        zf.writestr("chest_xray/train/NORMAL/zeros.jpeg", bytes(20 * 2**20))  # 20 MiB of zeros, ~20 kB packed
    with pytest.raises(folder.SourceError, match="zeros.jpeg.*zip bomb"):
        folder.extract_zip(archive, tmp_path / "out", max_bytes=10**12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]  # nothing was written


def test_absurd_uncompressed_size_is_refused(tmp_path):
    with pytest.raises(folder.SourceError, match="max_archive_bytes"):
        folder.extract_zip(_kaggle_zip(tmp_path), tmp_path / "out", max_bytes=100)


def test_folder_without_class_folders_names_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(folder.SourceError, match="NORMAL/PNEUMONIA"):
        folder.find_split_dirs(tmp_path / "empty")


def test_a_split_folder_named_validation_is_the_val_split(tmp_path):
    root = kaggle_tree(tmp_path / "src", splits=("train", "validation"), patients=2, per_patient=1)
    cands = folder.candidates(root)
    assert len(cands) == 8 and {c.source_split for c in cands} == {"train", "val"}
    only = folder.candidates(root / "validation")
    assert {c.source_split for c in only} == {"val"} and len(only) == 4


def test_a_hand_unzipped_folder_with_a_macosx_sibling_is_read(tmp_path):
    src = kaggle_tree(tmp_path / "dl", splits=("train", "test"), patients=1, per_patient=1)
    for path in sorted(src.rglob("*.jpeg")):  # the __MACOSX mirror sorts before chest_xray and holds only junk
        junk = tmp_path / "dl" / "__MACOSX" / path.relative_to(tmp_path / "dl").parent / f"._{path.name}"
        junk.parent.mkdir(parents=True, exist_ok=True)
        junk.write_bytes(b"junk")
    cands = folder.candidates(tmp_path / "dl")
    assert len(cands) == 4 and all("__MACOSX" not in c.path and c.problem is None for c in cands)


def test_a_zip_made_on_windows_reads_as_the_same_layout(tmp_path):
    src = kaggle_tree(tmp_path / "src", patients=1, per_patient=1)
    archive = tmp_path / "windows.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*.jpeg")):
            zf.writestr(str(path.relative_to(src.parent)).replace("/", "\\"), path.read_bytes())
    cands = folder.candidates(folder.extract_zip(archive, tmp_path / "out", max_bytes=10**9))
    assert len(cands) == 2 and {c.class_name for c in cands} == {"NORMAL", "PNEUMONIA"}


def _patched_zip(tmp_path, patch) -> Path:
    """A one-member stored zip with `patch(data: bytearray, local, central)` applied to its bytes."""
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("chest_xray/train/NORMAL/IM-0001-0001.jpeg", image_bytes(1))
    data = bytearray(archive.read_bytes())
    patch(data, data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02"))
    archive.write_bytes(bytes(data))
    return archive


def _bad_crc(data, local, central):
    data[local + 30 + len("chest_xray/train/NORMAL/IM-0001-0001.jpeg") + 100] ^= 0xFF  # a byte of the image


def _encrypted(data, local, central):
    data[local + 6] |= 1  # general purpose flag bit 0: encrypted
    data[central + 8] |= 1


def _deflate64(data, local, central):
    data[local + 8] = data[central + 10] = 9  # compression method 9: Deflate64


@pytest.mark.parametrize("patch, reason", [(_bad_crc, "Bad CRC-32"), (_encrypted, "encrypted"),
                                           (_deflate64, "compression method")])
def test_a_zip_member_that_cannot_be_extracted_is_one_line_naming_it(tmp_path, patch, reason):
    archive = _patched_zip(tmp_path, patch)
    before = archive.read_bytes()
    with pytest.raises(folder.SourceError, match=rf"member 'chest_xray/train/NORMAL/IM-0001-0001.jpeg' cannot be "
                                                 rf"extracted \(.*{reason}.*\); re-download"):
        folder.extract_zip(archive, tmp_path / "out", max_bytes=10**9)
    assert not (tmp_path / "out").exists() and archive.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.partial")] == []


def test_a_link_loop_and_a_name_that_is_not_utf8_are_named_not_raised(tmp_path):
    import os

    root = kaggle_tree(tmp_path / "src", patients=1, per_patient=1)
    normal = root / "train" / "NORMAL"
    (normal / "loop.jpeg").symlink_to(normal / "loop.jpeg")  # a link to itself
    latin = os.path.join(os.fsencode(normal), b"IM-0002-caf\xe9.jpeg")  # Latin-1 bytes, not UTF-8
    with open(latin, "wb") as fh:
        fh.write(image_bytes(2))
    found = {Path(c.path).name: c for c in folder.candidates(root)}
    assert "loops or points to nothing" in found["loop.jpeg"].problem
    assert found["IM-0002-caf\ufffd.jpeg"].problem.startswith("file name is not valid UTF-8")
    assert found["IM-0002-caf\ufffd.jpeg"].patient_id.encode("utf-8")  # writable to the quarantine file
    assert sum(c.problem is None for c in found.values()) == 2

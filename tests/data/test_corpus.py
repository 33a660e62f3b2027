"""The photo corpus builder: licences from DEP-5 files, Lanczos reduction, splits by photo, manifest."""
import hashlib
import json
import os

import numpy as np
import pytest

from sr_keras.data import corpus


def test_lomiri_licences_reads_each_files_paragraph(tmp_path):
    copyright = tmp_path / "copyright"
    copyright.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                         "Files: 16.04/a_by_x.jpg\nCopyright: X, 2018\nLicense: CC-BY-4.0\n\n"
                         "Files: 20.04/b_by_y.jpg 20.04/c_by_z.jpg\nCopyright: Y\nLicense: CC-BY-SA-3.0\n"
                         " long licence text: with a colon\n")
    assert corpus.lomiri_licences([str(copyright)]) == {
        "a_by_x.jpg": "CC-BY-4.0", "b_by_y.jpg": "CC-BY-SA-3.0", "c_by_z.jpg": "CC-BY-SA-3.0"}


def test_reduce_long_side_keeps_aspect_and_never_enlarges():
    big = np.zeros((1000, 4080, 3), np.uint8)
    assert corpus.reduce_long_side(big).shape == (500, 2040, 3)
    small = np.zeros((300, 451, 3), np.uint8)
    assert corpus.reduce_long_side(small) is small


def test_every_photograph_is_in_exactly_one_split_and_no_excluded_render_is_used():
    assert set(corpus.SPLITS.values()) == {"train", "valid", "test"}
    names = [key.split(":", 1)[1] for key in corpus.SPLITS]
    assert not set(names) & set(corpus.LOMIRI_EXCLUDED)
    outputs = [corpus.output_name(key) for key in corpus.SPLITS]
    assert len(set(outputs)) == len(outputs)  # one file per photograph, so no photo lands in two splits


def test_build_writes_split_folders_and_a_manifest_with_checksums(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    photos = {"p:a": "train", "p:b": "valid", "p:c": "test"}
    monkeypatch.setattr(corpus, "SPLITS", photos)
    monkeypatch.setattr(corpus, "LOADERS", {"p": lambda name: rng.integers(0, 256, (30, 40, 4), np.uint8)})
    monkeypatch.setattr(corpus, "LICENCES", {"p": "test licence"})
    manifest = corpus.build(str(tmp_path), progress=lambda line: None)
    assert manifest["counts"] == {"train": 1, "valid": 1, "test": 1}
    for entry in manifest["files"]:
        path = tmp_path / entry["file"]
        assert entry["file"].startswith(photos[entry["source"]] + os.sep)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["size"] == [40, 30]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert not [n for n in os.listdir(tmp_path / "train") if n.startswith(".tmp-")]


def test_train_scales_add_reduced_copies_of_training_photographs_only(tmp_path, monkeypatch):
    photos = {"p:a": "train", "p:b": "valid", "p:c": "test"}
    monkeypatch.setattr(corpus, "SPLITS", photos)
    monkeypatch.setattr(corpus, "LOADERS", {"p": lambda name: np.full((40, 60, 3), 7, np.uint8)})
    monkeypatch.setattr(corpus, "LICENCES", {"p": "test licence"})
    manifest = corpus.build(str(tmp_path), progress=lambda line: None, train_scales=(0.5, 1, 0.75))
    assert manifest["counts"] == {"train": 3, "valid": 1, "test": 1} and manifest["train_scales"] == [1.0, 0.75, 0.5]
    sizes = {e["file"]: e["size"] for e in manifest["files"]}
    # 60x40 reduced by 0.75 -> 45x30, by 0.5 -> 30x20; valid and test once, full size
    assert sizes == {os.path.join("train", "p_a.png"): [60, 40], os.path.join("train", "p_a_s75.png"): [45, 30],
                     os.path.join("train", "p_a_s50.png"): [30, 20], os.path.join("valid", "p_b.png"): [60, 40],
                     os.path.join("test", "p_c.png"): [60, 40]}
    assert sorted(os.listdir(tmp_path / "train")) == ["p_a.png", "p_a_s50.png", "p_a_s75.png"]
    with pytest.raises(ValueError, match=r"Received: train_scales=\(1\.5,\)"):
        corpus.build(str(tmp_path), progress=lambda line: None, train_scales=(1.5,))


def test_build_caps_the_long_side_of_every_photograph(tmp_path, monkeypatch):
    photos = {"p:wide": "train", "p:tall": "test"}
    shapes = {"wide": (12, corpus.LONG_SIDE + 60, 3), "tall": (corpus.LONG_SIDE * 2, 6, 3)}
    monkeypatch.setattr(corpus, "SPLITS", photos)
    monkeypatch.setattr(corpus, "LOADERS", {"p": lambda name: np.full(shapes[name], 90, np.uint8)})
    monkeypatch.setattr(corpus, "LICENCES", {"p": "test licence"})
    manifest = corpus.build(str(tmp_path), progress=lambda line: None, train_scales=(1, 0.5))
    sizes = {e["file"]: e["size"] for e in manifest["files"]}
    # [width, height]: 2100x12 -> 2040x12 (12 * 2040 / 2100 = 11.66), 6x4080 -> 3x2040; the 0.5 copy of that
    assert sizes == {os.path.join("train", "p_wide.png"): [2040, 12], os.path.join("test", "p_tall.png"): [3, 2040],
                     os.path.join("train", "p_wide_s50.png"): [1020, 6]}

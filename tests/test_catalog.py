"""The catalog: listing local trees, globs and S3 prefixes; fingerprints; output names."""

import os
import time

import pytest

from clear_ray.catalog import CatalogError, content_fingerprint, list_inputs, output_uri_for

EXTENSIONS = (".mp4", ".mkv")


def _tree(root):
    for rel in ("a.mp4", "sub/b.MKV", "sub/deep/c.mp4", "notes.txt", "out/_staging/x.mp4", "_manifest/y.mp4"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    return root


def test_directory_is_listed_recursively_with_relative_paths(tmp_path):
    videos = list_inputs(str(_tree(tmp_path / "src")), EXTENSIONS, exclude_prefix=str(tmp_path / "src" / "out"))
    assert [v.rel_path for v in videos] == ["a.mp4", "sub/b.MKV", "sub/deep/c.mp4"]
    assert all(os.path.isabs(v.uri) and os.path.exists(v.uri) for v in videos)


def test_single_file_and_glob(tmp_path):
    src = _tree(tmp_path / "src")
    [one] = list_inputs(str(src / "sub" / "b.MKV"), EXTENSIONS)
    assert one.rel_path == "b.MKV"
    videos = list_inputs(str(src / "sub" / "**" / "*.mp4"), EXTENSIONS)
    assert [v.rel_path for v in videos] == ["deep/c.mp4"]


def test_missing_src_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        list_inputs(str(tmp_path / "nope"), EXTENSIONS)


def test_stat_fingerprint_changes_when_touched_content_fingerprint_does_not(tmp_path):
    src = _tree(tmp_path / "src")
    before = {v.rel_path: v for v in list_inputs(str(src), EXTENSIONS)}
    later = time.time() + 5
    os.utime(src / "a.mp4", (later, later))
    after = {v.rel_path: v for v in list_inputs(str(src), EXTENSIONS)}
    assert after["a.mp4"].fingerprint != before["a.mp4"].fingerprint
    assert after["sub/b.MKV"].fingerprint == before["sub/b.MKV"].fingerprint
    assert content_fingerprint(str(src / "a.mp4")) == content_fingerprint(str(src / "a.mp4"))
    assert content_fingerprint(str(src / "a.mp4")) != content_fingerprint(str(src / "sub/b.MKV"))


def test_s3_prefix_listing_uses_etags_and_mirrors_paths(s3_server, s3_bucket):
    fs = s3_server.filesystem()
    for rel in ("in/a.mp4", "in/x/b.mp4", "in/readme.md"):
        fs.pipe(f"{s3_bucket}/{rel}", rel.encode())
    videos = list_inputs(f"{s3_bucket}/in", EXTENSIONS, storage_options=s3_server.storage_options())
    assert [(v.uri, v.rel_path) for v in videos] == [(f"{s3_bucket}/in/a.mp4", "a.mp4"),
                                                    (f"{s3_bucket}/in/x/b.mp4", "x/b.mp4")]
    assert "ETag" in videos[0].version
    assert output_uri_for(videos[1], "s3://out-bucket/res", ".mkv") == "s3://out-bucket/res/x/b.mkv"
    fs.pipe(f"{s3_bucket}/in/a.mp4", b"changed")
    again = list_inputs(f"{s3_bucket}/in", EXTENSIONS, storage_options=s3_server.storage_options())
    assert again[0].fingerprint != videos[0].fingerprint and again[1].fingerprint == videos[1].fingerprint


def test_ten_thousand_inputs_are_listed_without_touching_each_file(tmp_path, monkeypatch):
    # One recursive listing; no per-file open/info/probe on the driver.
    from fsspec.implementations.local import LocalFileSystem

    src = tmp_path / "library"
    for shelf in range(20):
        (src / f"shelf{shelf:02d}").mkdir(parents=True)
        for i in range(500):
            (src / f"shelf{shelf:02d}" / f"v{i:04d}.mp4").touch()
    touched = []
    for name in ("open", "info", "_open"):
        original = getattr(LocalFileSystem, name)
        monkeypatch.setattr(LocalFileSystem, name, lambda self, path, *a, _o=original, _n=name, **k:
                            touched.append((_n, path)) or _o(self, path, *a, **k))
    started = time.perf_counter()
    videos = list_inputs(str(src), EXTENSIONS)
    assert len(videos) == 10_000
    # (find() stats the entries and directories it walks: that is the listing itself.)
    assert [call for call in touched if str(call[1]).endswith(".mp4") and isinstance(call[1], str)] == []
    assert time.perf_counter() - started < 20


def test_links_to_files_are_inputs_versioned_by_their_target(tmp_path):
    library = _tree(tmp_path / "library")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "linked.mp4").symlink_to(library / "a.mp4")
    (src / "sub" / "other.mkv").symlink_to(library / "sub" / "b.MKV")
    (src / "broken.mp4").symlink_to(tmp_path / "gone.mp4")
    (src / "dir.mp4").symlink_to(library / "sub")  # a link to a directory is no video
    videos = {v.rel_path: v for v in list_inputs(str(src), EXTENSIONS)}
    assert sorted(videos) == ["linked.mp4", "sub/other.mkv"]
    assert videos["linked.mp4"].uri == str(src / "linked.mp4")
    assert videos["linked.mp4"].size == len(b"a.mp4")
    later = time.time() + 5
    os.utime(library / "a.mp4", (later, later))  # the target changes, the link does not
    after = {v.rel_path: v for v in list_inputs(str(src), EXTENSIONS)}
    assert after["linked.mp4"].fingerprint != videos["linked.mp4"].fingerprint
    assert after["sub/other.mkv"].fingerprint == videos["sub/other.mkv"].fingerprint
    [one] = list_inputs(str(src / "linked.mp4"), EXTENSIONS)  # a link as SRC itself
    assert (one.rel_path, one.fingerprint) == ("linked.mp4", after["linked.mp4"].fingerprint)

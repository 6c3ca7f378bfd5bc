import json
import os
import socket

import numpy as np
import pytest

import hgtrain.data.loading.prepare as prepare
from hgtrain.data.generator.photometric import PhotometricNoise
from hgtrain.data.generator.scene import SceneConfig
from hgtrain.data.loading.coco_format import read_keypoint_set
from hgtrain.data.loading.storage import MANIFEST, is_prepared, remove_stale, write_atomically
from hgtrain.data.loading.synthetic import SyntheticKeypoints


def prepare_val(root, **kwargs):
    return prepare.prepare_synthetic_set(root, "val", 4, 48, **kwargs)


class Crash(RuntimeError):
    pass


def crash_after_two_images(monkeypatch):
    """Make the next set writing die after two images are on disk."""
    real_render = prepare._render_all

    def dying(dataset, num_workers):
        for index, sample in enumerate(real_render(dataset, num_workers)):
            if index == 2:
                raise Crash("killed")
            yield sample

    monkeypatch.setattr(prepare, "_render_all", dying)


def test_prepared_set_matches_the_generator(tmp_path):
    path = prepare_val(tmp_path)
    records = read_keypoint_set(path).records
    expected = SyntheticKeypoints("val", 4, 48).sample(3)
    np.testing.assert_array_equal(records[3].keypoints, expected.keypoints)


def test_interrupted_prepare_leaves_no_set_that_is_reused(tmp_path, monkeypatch):
    crash_after_two_images(monkeypatch)
    with pytest.raises(Crash):
        prepare_val(tmp_path)
    path, settings = prepare.synthetic_set_path(tmp_path, "val", 4, 48, 0, SceneConfig(), None)
    assert not path.exists() and not is_prepared(path, settings)
    monkeypatch.undo()
    assert prepare_val(tmp_path) == path
    assert len(read_keypoint_set(path).records) == 4


def test_killed_writer_leaves_only_a_hidden_folder_that_is_cleaned_later(tmp_path):
    path = tmp_path / "synthetic" / "set"
    dead_pid = 2**22 + 12345  # above the default pid_max, so no process has it
    host = socket.gethostname()
    leftovers = [
        path.parent / f".set.tmp-{host}-{dead_pid}-abcd1234",
        path.parent / f".set.tmp-{dead_pid}-abcd1234",  # named by hgtrain <= 0.2
    ]
    for leftover in leftovers:
        (leftover / "images").mkdir(parents=True)
        (leftover / "annotations.json").write_text("{}")
    assert not is_prepared(path, {"a": 1})
    remove_stale(path.parent)
    assert not any(leftover.exists() for leftover in leftovers)


def test_temporary_folders_of_running_or_remote_writers_are_kept(tmp_path):
    dead_pid = 2**22 + 12345
    running = tmp_path / f".set.tmp-{socket.gethostname()}-{os.getpid()}-abcd1234"
    remote = tmp_path / f".set.tmp-other-node-7-{dead_pid}-abcd1234"  # its pid means nothing here
    running.mkdir()
    remote.mkdir()
    remove_stale(tmp_path)
    assert running.exists() and remote.exists()


def test_set_without_manifest_or_with_other_settings_is_replaced(tmp_path):
    path = prepare_val(tmp_path)
    (path / MANIFEST).unlink()
    assert prepare_val(tmp_path) == path and (path / MANIFEST).exists()
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["settings"]["seed"] = 99
    (path / MANIFEST).write_text(json.dumps(manifest))
    prepare_val(tmp_path)
    assert json.loads((path / MANIFEST).read_text())["settings"]["seed"] == 0


def test_matching_set_is_reused_without_writing(tmp_path, monkeypatch):
    path = prepare_val(tmp_path)
    stamp = os.stat(path / "annotations.json").st_mtime_ns
    monkeypatch.setattr(prepare, "write_atomically", lambda *a: pytest.fail("rewrote the set"))
    assert prepare_val(tmp_path) == path
    assert os.stat(path / "annotations.json").st_mtime_ns == stamp


def test_different_settings_get_different_folders(tmp_path):
    clean = prepare_val(tmp_path)
    noisy = prepare_val(tmp_path, noise=PhotometricNoise())
    other_scene = prepare_val(tmp_path, scene=SceneConfig(objects=(1, 2)))
    assert len({clean, noisy, other_scene}) == 3
    assert "clean" in clean.name and "noisy" in noisy.name


def test_a_set_finished_meanwhile_by_another_process_is_kept(tmp_path):
    path = tmp_path / "set"

    def racing(folder):
        (folder / "a.txt").write_text("mine")
        # another node completes the same set while this one is still writing
        write_atomically(path, {"v": 1}, lambda other: (other / "a.txt").write_text("theirs"))

    write_atomically(path, {"v": 1}, racing)
    assert (path / "a.txt").read_text() == "theirs" and is_prepared(path, {"v": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_failed_write_keeps_the_previous_set(tmp_path):
    path = tmp_path / "set"
    write_atomically(path, {"v": 1}, lambda folder: (folder / "a.txt").write_text("old"))

    def failing(folder):
        (folder / "a.txt").write_text("new")
        raise Crash("disk full")

    with pytest.raises(Crash):
        write_atomically(path, {"v": 2}, failing)
    assert (path / "a.txt").read_text() == "old" and is_prepared(path, {"v": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["set"]

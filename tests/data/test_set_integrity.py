"""Generated sets verify themselves, and a killed writer leaves no process and no set behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hgtrain.data.loading.coco_format import read_keypoint_set
from hgtrain.data.loading.prepare import prepare_synthetic_set
from hgtrain.data.loading.storage import MANIFEST, is_prepared


def prepare_val(root, size=8, image_size=64):
    return prepare_synthetic_set(root, "val", size, image_size)


def contents(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def truncate_image(folder):
    image = folder / "images/000003.png"
    size = image.stat().st_size
    image.write_bytes(image.read_bytes()[: size // 2])
    return f"images/000003.png: {size // 2} bytes, the manifest says {size}"


def delete_image(folder):
    (folder / "images/000005.png").unlink()
    return "images/000005.png is missing"


def flip_a_bit_in_an_image(folder):
    image = folder / "images/000001.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    image.write_bytes(data)
    return "images/000001.png: its content differs from the manifest's checksum"


def damage_annotations(folder):
    annotations = folder / "annotations.json"
    text = annotations.read_text()
    annotations.write_text(text.replace('"keypoints"', '"keyp0ints"', 1))
    return "annotations.json: its content differs from the manifest's checksum"


@pytest.mark.parametrize(
    "damage", [truncate_image, delete_image, flip_a_bit_in_an_image, damage_annotations]
)
def test_a_damaged_set_is_named_and_written_again_whole(tmp_path, capsys, damage):
    path = prepare_val(tmp_path)
    original = contents(path)
    problem = damage(path)
    assert not is_prepared(path, json.loads((path / MANIFEST).read_text())["settings"])

    assert prepare_val(tmp_path) == path
    message = f"hgtrain: {path} is damaged ({problem}); writing it again\n"
    assert capsys.readouterr().err == message
    assert contents(path) == original
    assert len(read_keypoint_set(path).records) == 8


def test_a_set_of_an_older_hgtrain_without_checksums_is_written_again(tmp_path, capsys):
    path = prepare_val(tmp_path)
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({"settings": manifest["settings"]}))

    prepare_val(tmp_path)
    expected = f"hgtrain: {path} has no checksums (it was written by an older hgtrain)"
    assert capsys.readouterr().err == f"{expected}; writing it again\n"
    assert json.loads((path / MANIFEST).read_text()) == manifest


def test_an_intact_set_is_reused_untouched_and_silently(tmp_path, capsys):
    path = prepare_val(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    assert prepare_val(tmp_path) == path
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == stamps
    assert capsys.readouterr().err == ""


def test_every_file_but_the_manifest_is_recorded_with_its_size(tmp_path):
    path = prepare_val(tmp_path)
    files = json.loads((path / MANIFEST).read_text())["files"]
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(files) == on_disk - {MANIFEST}
    assert all(files[name]["bytes"] == (path / name).stat().st_size for name in files)


WRITER_HELD_HALF_WAY = textwrap.dedent(
    """
    import sys, time
    import hgtrain.data.loading.prepare as prepare

    render = prepare._render_all

    def held(dataset, num_workers):  # stop consuming after four images, workers still busy
        for index, sample in enumerate(render(dataset, num_workers)):
            yield sample
            if index == 3:
                time.sleep(600)

    prepare._render_all = held
    prepare.prepare_synthetic_set(sys.argv[1], "val", 16, 128, num_workers=2)
    """
)


def children(pid):
    """(pid, start time) of the live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            fields = process_stat(int(stat))
            if fields and int(fields[1]) == pid:
                found.add((int(stat), fields[19]))
    return found


def process_stat(pid):
    """Fields of /proc/PID/stat after the command name, from the state on; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in "ZX" else fields


def still_running(processes):
    """Those of ``processes`` (pid, start time) that still run (a reused pid starts later)."""
    return {
        (pid, start) for pid, start in processes if (process_stat(pid) or [None] * 20)[19] == start
    }


def wait_until(condition, seconds):
    """Whether ``condition()`` became true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def writer_held_half_way(tmp_path):
    """A process writing a set (16 images of 128 px, 2 DataLoader workers) into ``tmp_path``,
    stopped after four images, and its workers; whichever of them still run are killed afterwards."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER_HELD_HALF_WAY, str(tmp_path)])
    workers = set()
    try:
        started = wait_until(
            lambda: (
                writer.poll() is not None
                or any(tmp_path.glob("synthetic/.val-*.tmp-*/images/*.png"))
            ),
            seconds=120,
        )
        assert started and writer.poll() is None, "the writer did not start writing"
        workers |= children(writer.pid)
        yield writer, workers
    finally:
        writer.kill()
        writer.wait()
        for pid, _ in still_running(workers):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_writer_killed_half_way_leaves_no_worker_and_the_next_run_cleans_up(
    tmp_path, writer_held_half_way, kill
):
    writer, workers = writer_held_half_way
    assert len(workers) == 2
    writer.send_signal(kill)
    writer.wait(timeout=30)
    assert wait_until(lambda: not still_running(workers), seconds=3), (
        "DataLoader workers outlived the killed writer"
    )

    folder = tmp_path / "synthetic"
    leftover = [p.name for p in folder.iterdir()]
    assert len(leftover) == 1 and ".tmp-" in leftover[0]  # only the hidden temporary folder
    path = prepare_val(tmp_path, size=16, image_size=128)
    assert [p.name for p in folder.iterdir()] == [path.name]
    assert len(read_keypoint_set(path).records) == 16

"""A save whose bytes equal the file's writes nothing: the file keeps its inode and
mtime, so a dev server's reloader sees no change; a save with other bytes, even of the
same size, is written as stock writes it. On jupyter-server's own managers, on disk."""

import asyncio
import base64
import os

import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

from server_extension.storage.contents import WorkspaceFileManager
from server_extension.storage.unchanged import COMPARE_BLOCK, recorded_writes


def save(manager, model, path):
    return asyncio.run(manager.save(model, path))


def identity(path) -> tuple[int, int, int]:
    info = os.stat(path)
    return info.st_ino, info.st_mtime_ns, info.st_ctime_ns


def saved_with_writes(manager, model, path) -> tuple[dict, list[bool]]:
    async def run():
        with recorded_writes() as writes:
            return await manager.save(model, path), writes

    return asyncio.run(run())


def text_model(text: str) -> dict:
    return {"type": "file", "format": "text", "content": text}


@pytest.fixture
def manager(tmp_path):
    return WorkspaceFileManager(root_dir=str(tmp_path))


def test_the_same_text_again_leaves_the_file_alone(manager, tmp_path):
    first = save(manager, text_model("print('hi')\n"), "app.py")
    before = identity(tmp_path / "app.py")
    again, writes = saved_with_writes(manager, text_model("print('hi')\n"), "app.py")
    assert writes == [False]
    assert identity(tmp_path / "app.py") == before
    assert again["last_modified"] == first["last_modified"]

    # The same size, one byte apart: written.
    changed, writes = saved_with_writes(manager, text_model("print('ho')\n"), "app.py")
    assert writes == [True]
    assert (tmp_path / "app.py").read_text() == "print('ho')\n"
    assert identity(tmp_path / "app.py") != before
    assert changed["last_modified"] >= first["last_modified"]


def test_a_large_file_differing_in_its_last_block_is_written(manager, tmp_path):
    data = bytearray(os.urandom(3 * COMPARE_BLOCK + 17))
    model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
    save(manager, model, "data.bin")
    before = identity(tmp_path / "data.bin")
    assert saved_with_writes(manager, model, "data.bin")[1] == [False]
    assert identity(tmp_path / "data.bin") == before

    data[-1] ^= 0xFF
    model["content"] = base64.b64encode(data).decode()
    assert saved_with_writes(manager, model, "data.bin")[1] == [True]
    assert (tmp_path / "data.bin").read_bytes() == data


def test_a_notebook_saved_as_it_was_read_is_not_written(manager, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    save(manager, {"type": "notebook", "content": notebook}, "nb.ipynb")
    before = identity(tmp_path / "nb.ipynb")
    read = asyncio.run(manager.get("nb.ipynb"))
    as_read = {"type": "notebook", "content": read["content"]}
    assert saved_with_writes(manager, as_read, "nb.ipynb")[1] == [False]
    assert identity(tmp_path / "nb.ipynb") == before

    read["content"]["cells"][0]["source"] = "2 + 2"
    edited = {"type": "notebook", "content": read["content"]}
    assert saved_with_writes(manager, edited, "nb.ipynb")[1] == [True]
    assert "2 + 2" in (tmp_path / "nb.ipynb").read_text()


def test_a_new_file_and_an_emptied_file_are_written(manager, tmp_path):
    assert saved_with_writes(manager, text_model(""), "empty.txt")[1] == [True]
    assert (tmp_path / "empty.txt").read_bytes() == b""
    assert saved_with_writes(manager, text_model(""), "empty.txt")[1] == [False]
    save(manager, text_model("words"), "empty.txt")
    assert saved_with_writes(manager, text_model(""), "empty.txt")[1] == [True]
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_through_a_symlink_the_target_is_compared_and_written(manager, tmp_path):
    (tmp_path / "real.txt").write_text("same\n")
    (tmp_path / "link.txt").symlink_to("real.txt")
    before = identity(tmp_path / "real.txt")
    assert saved_with_writes(manager, text_model("same\n"), "link.txt")[1] == [False]
    assert identity(tmp_path / "real.txt") == before
    assert saved_with_writes(manager, text_model("other\n"), "link.txt")[1] == [True]
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "other\n"


def test_a_write_that_fails_half_way_leaves_the_file_as_it_was(manager, tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("kept\n")
    before = identity(path)
    with pytest.raises(RuntimeError), manager.atomic_writing(str(path)) as stream:
        stream.write("half")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "kept\n"
    assert identity(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_a_save_into_a_folder_path_fails_as_stock_fails(manager, tmp_path):
    (tmp_path / "folder").mkdir()
    stock = AsyncLargeFileManager(root_dir=str(tmp_path))
    errors = []
    for each in (stock, manager):
        with pytest.raises(web.HTTPError) as caught:
            save(each, text_model("x"), "folder")
        errors.append((caught.value.status_code, caught.value.log_message))
    assert errors[0] == errors[1] and errors[0][0] == 500, errors
    assert (tmp_path / "folder").is_dir()

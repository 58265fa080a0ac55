"""The fork server's one reading of the packages' entry points answers as the original."""

import importlib.metadata

import jupyter_lsp.manager

from server_extension.startup.entrypoints import answering_from


def test_the_remembered_entry_points_answer_as_a_fresh_reading():
    remembered = answering_from(importlib.metadata.entry_points())
    for group in ("jupyter_lsp_spec_v1", "console_scripts", "no such group"):
        assert list(remembered(group=group)) == list(importlib.metadata.entry_points(group=group))
    assert list(remembered(name="jupyter-server")) == list(
        importlib.metadata.entry_points(name="jupyter-server")
    )
    everything = remembered()
    assert sorted(everything.groups) == sorted(importlib.metadata.entry_points().groups)
    assert remembered.remembered and remembered.__doc__ == importlib.metadata.entry_points.__doc__


def test_jupyter_lsp_takes_entry_points_from_importlib_metadata_when_imported():
    # The fork server replaces the function before the imports: jupyter-lsp, which reads
    # its language servers and listeners at every start, must bind this one to use it.
    assert jupyter_lsp.manager.entry_points is importlib.metadata.entry_points

"""The Run button's pure parts: the bounded scrollback, the tail a crashed run leaves, the
/proc parsing that finds a run's processes, and the states the status bar shows."""

import os

from server_extension.run.processes import descendants, stat_fields
from server_extension.run.runner import RunRecord, ended_state, state_label
from server_extension.run.scrollback import BoundedScrollback, plain_tail


def test_the_scrollback_keeps_the_newest_output_within_its_bound():
    scrollback = BoundedScrollback(100)
    for number in range(1000):
        scrollback.append(f"line {number:04}\n")  # 10 characters each
    assert scrollback.chars == len(scrollback.text()) <= 100
    assert scrollback.text().endswith("line 0999\n")
    scrollback.append("x" * 65536)  # one read bigger than the whole bound
    assert scrollback.text() == "x" * 100
    # What terminado replays to a late viewer: a copy it may empty.
    copy = scrollback.copy()
    copy.popleft()
    assert scrollback.text() == "x" * 100


def test_the_tail_is_plain_text_with_progress_bars_at_their_last_state():
    output = "\x1b[32mok\x1b[0m\r\n\x1b]0;title\x0710%\r50%\r100%\r\nlast"
    assert plain_tail(output, 10) == "ok\n100%\nlast"
    assert plain_tail("a\nb\nc\n", 2) == "c\n"


def test_stat_fields_survive_a_command_name_with_parentheses():
    fields = stat_fields("42 (my (odd) name) S 1 42 42 0 -1")
    assert fields[:4] == ["S", "1", "42", "42"]


def fake_proc(root, processes: dict[int, tuple[int, str]]) -> str:
    """A /proc with ``pid -> (parent, state)``, as ``stat`` files show them."""
    for pid, (parent, state) in processes.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "stat").write_text(f"{pid} (a (b) c) {state} {parent} {pid} {pid} 0")
    (root / "self").mkdir()
    return str(root)


def test_descendants_are_found_through_every_generation_but_zombies(tmp_path):
    # 10 is the root; 13 left its session and was re-parented to it; 14 is a zombie.
    proc = fake_proc(
        tmp_path,
        {
            1: (0, "S"),
            10: (1, "S"),
            11: (10, "S"),
            12: (11, "R"),
            13: (10, "S"),
            14: (10, "Z"),
            20: (1, "S"),
            21: (20, "S"),
        },
    )
    assert descendants(10, proc) == [11, 13, 12]
    assert descendants(12, proc) == []
    assert descendants(99, proc) == []
    assert os.getpid() in descendants(os.getppid())


def record(**kwargs) -> RunRecord:
    return RunRecord(1, None, None, BoundedScrollback(10), 1, **kwargs)


def test_states_and_labels():
    assert ended_state(record(exit_code=0)) == "stopped"
    assert ended_state(record(exit_code=1, stopped=True)) == "stopped"
    crashed = record(exit_code=2)
    assert state_label(ended_state(crashed), crashed) == "Crashed (exit 2)"
    killed = record(signal=9)
    assert state_label(ended_state(killed), killed) == "Crashed (signal 9)"
    assert state_label("starting", None) == "Starting"


def test_a_scrollback_extended_with_what_terminado_read_first_keeps_its_cap():
    scrollback = BoundedScrollback(10)
    scrollback.extend(["abcdefgh", "ijklmnop"])
    assert scrollback.chars <= 10 and scrollback.text() == "ijklmnop"

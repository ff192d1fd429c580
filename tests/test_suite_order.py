"""The suite's own scheduling: the longest tests open the xdist workers' lanes (tests/conftest.py)."""

from pathlib import Path
from types import SimpleNamespace

from tests.conftest import FIRST, lanes


def test_the_longest_tests_open_each_workers_chunk():
    items = [SimpleNamespace(nodeid=f"t{i}") for i in range(20)]
    first = ("t17", "t3", "t11", "t19")  # longest first
    for workers in (1, 2, 3):
        out = lanes(items, workers, first)
        assert sorted(out, key=lambda it: int(it.nodeid[1:])) == items  # a permutation: nothing lost or doubled
        starts, remaining = [0], len(items)
        for w in range(workers - 1):  # where worksteal cuts the collection: pending // (workers - w)
            remaining -= remaining // (workers - w)
            starts.append(len(items) - remaining)
        heads = [[it.nodeid for it in out[s:s + 2]] for s in starts]
        assert [h[0] for h in heads] == list(first[:workers])  # the longest of all opens every lane
        assert sum(len(set(h) & set(first)) for h in heads) == min(len(first), 2 * workers)


def test_a_selection_of_long_tests_keeps_every_test():
    """`pytest -n 2 path::one_long_test`: fewer tests than lanes, or mostly long ones, still all run once."""
    first = ("t0", "t1", "t2")
    for n in range(0, 6):
        items = [SimpleNamespace(nodeid=f"t{i}") for i in range(n)]
        for workers in (1, 2, 3):
            out = lanes(items, workers, first)
            assert sorted(out, key=lambda it: it.nodeid) == items, (n, workers)


def test_every_long_test_named_first_exists():
    """A renamed test would silently drop out of FIRST and queue behind short ones: each key names a test file
    or a test function (read from the source: a run of the fast tier deselects these slow tests)."""
    files = list(Path(__file__).parent.rglob("test_*.py"))
    source = "\n".join(p.read_text() for p in files)
    missing = [key for key in FIRST if not (key.endswith(".py") and any(p.name == key for p in files))
               and f"def {key.split('::')[-1].split('[')[0]}" not in source]
    assert not missing, f"tests/conftest.py FIRST names no test: {missing}"

"""ecopatch.raster.ongrid: the order of a window's two reads."""

from __future__ import annotations

import threading

from ecopatch.raster.ongrid import read_pair


def test_read_pair_gives_before_then_after_and_the_threads_of_a_pass_start_on_different_dates():
    """Two threads reading neighbouring windows start on different files; each keeps its order."""
    firsts: dict[int, list[str]] = {}
    got: list[tuple[str, str]] = []
    start = threading.Barrier(2)

    def worker(k: int) -> None:
        start.wait()
        for _ in range(3):
            calls: list[str] = []
            got.append(read_pair(lambda calls=calls: calls.append("before") or "B",
                                 lambda calls=calls: calls.append("after") or "A"))
            assert sorted(calls) == ["after", "before"]
            firsts.setdefault(k, []).append(calls[0])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [("B", "A")] * 6  # in the callers' order whatever the reading order
    assert all(len(set(f)) == 1 for f in firsts.values())  # a thread keeps its order
    assert {f[0] for f in firsts.values()} == {"before", "after"}  # the two threads start on different dates

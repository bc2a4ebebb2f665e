"""The processes of a registry kept open in shares (``search.OpenRegistry(workers=N)``): each reads and keeps
its own rows of the registry, then searches them for each patient and sends back its best donors with the
facts the ranking read (``search._Share``); the opening process keeps the best of all and explains them, one
share process computing their NK facts meanwhile. Spawned, not forked: polars' threads do not survive a fork."""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

_HELD: dict = {}


def _init(root: str, cache: str) -> None:
    """A new process: the same release, from the same cache folder as the opening process."""
    os.environ["HAPLOMATCH_CACHE"] = cache
    from haplomatch.reference import load_reference

    _HELD["ref"] = load_reference(root)


def _open(path: str, settings, missing_second: str, batch_size: int, share: tuple[int, int, int]) -> int:
    from haplomatch.search import OpenRegistry

    opened = OpenRegistry(_HELD["ref"], path, settings=settings, missing_second=missing_second,
                          batch_size=batch_size, share=share)
    _HELD["opened"] = opened
    # what a search imports on first use, imported now (the first patient's search is not the slower one)
    import haplomatch.familyfile  # noqa: F401
    import haplomatch.kirscores  # noqa: F401
    import haplomatch.pairfacts  # noqa: F401
    import haplomatch.ranking  # noqa: F401

    return sum(b.n for b in opened.kept)


def _search(patient, options: dict):
    import resource

    from haplomatch.search import _scan

    opened = _HELD["opened"]
    share, _ = _scan(opened.ref, patient, opened, opened.settings, **options)
    # Linux gives kilobytes
    return share, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nk(patient, donors):
    from haplomatch.nk import nk_pair_facts
    from haplomatch.persons import pair_frame, people_frame

    opened = _HELD["opened"]
    return nk_pair_facts(opened.ref, pair_frame(people_frame([patient]), donors), opened.settings.nk)


class ShareWorker:
    """One process holding one share (``share``: first row, end row, rows of the whole registry)."""

    def __init__(self, ref, path: Path, settings, missing_second: str, batch_size: int,
                 share: tuple[int, int, int], processes: int) -> None:
        import multiprocessing

        # a share of the CPUs for the new process's polars threads (read as it starts): the polars threads of
        # several processes on the same CPUs wait on one another; a POLARS_MAX_THREADS of the user's is kept
        mine = "POLARS_MAX_THREADS" not in os.environ
        if mine:
            os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
        try:
            self._ex = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init, initargs=(str(ref.release.root),
                                                                        str(ref.cache_path.parent)))
            self._opened: Future = self._ex.submit(_open, str(path), settings, missing_second, batch_size, share)
        finally:
            if mine:
                del os.environ["POLARS_MAX_THREADS"]
        self.share = share

    def ready(self) -> int:
        """The rows this process keeps, once read (its refusal raised here)."""
        return _result(self._opened, "reading its share of the registry")

    def search(self, patient, options: dict) -> Future:
        """A search of this share for ``patient`` (``search._scan``'s options), running meanwhile
        (:func:`result` gives it)."""
        return self._ex.submit(_search, patient, options)

    def nk_facts(self, patient, donors) -> Future:
        """``nk.nk_pair_facts`` of ``patient`` and ``donors`` (people rows), computed meanwhile in this process
        (for the best of a search: ``pairfacts.pair_facts``'s ``nk_elsewhere``)."""
        return self._ex.submit(_nk, patient, donors)

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)


def _result(future: Future, doing: str):
    """A share process's answer; a process that ended without one is said in words, with the likely cause."""
    from concurrent.futures.process import BrokenProcessPool

    from haplomatch.errors import HaplomatchError

    try:
        return future.result()
    except BrokenProcessPool as e:
        raise HaplomatchError(
            f"a process of the opened registry ended while {doing} (out of memory, killed, or a script without "
            f"the `if __name__ == \"__main__\":` guard that spawned processes need): open the registry again"
        ) from e


def result(future: Future, doing: str = "searching its share"):
    """The answer of :meth:`ShareWorker.search` (or of another request: ``doing`` says what it was)."""
    return _result(future, doing)

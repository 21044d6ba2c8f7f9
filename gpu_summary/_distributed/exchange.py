"""The exchange: every merged call of a step, from every rank, in a header and two packs.

The caller's thread adds each merged call (a :class:`Merge`) to the open *batch*: the merged
calls of one step, in call order. A call at another step seals the batch (so does
``add_anomaly``, whose report the caller may wait for, and ``close()``); sealed batches queue,
at most ``max_pending`` of them (a caller that outruns the collectives waits, as for a full
event file), for the exchange thread, which runs per batch, on the writer's own communicator:

1. **header and MIN pack**, one MIN all-reduce. The header is 8 words ``[a, -a, b, -b, open,
   -open, ok, -ok]``: ``a`` and ``b`` are the two 48-bit halves of a hash of the step and of
   every call's signature (kind, tag, step, bins, dtype) and MIN size; ``open`` is 0 in the
   marker ``close()`` sends; ``ok`` is 0 where this rank's reduction failed. ``min(x) ==
   -min(-x)`` for each pair exactly when every rank sent the same word. The MIN pack — each
   call's MIN words (ranges, the span of non-empty buckets) — rides after the header when it
   has as many words as the last batch every rank agreed on, a size every rank knows alike;
   otherwise that space is padding and, once the headers agree (so every rank's pack has the
   same size), the MIN pack follows in a collective of its own. So no pack whose size could
   differ between ranks ever goes out (a size mismatch aborts gloo's process);
2. **SUM pack**: ``[failed]`` then each call's SUM words, whose sizes follow from the header
   and the MIN pack (the same on every rank): counts over the buckets every rank's span
   covers, moments, NaN/±Inf counts.

So a step that logs what the step before logged costs 2 collectives, one whose calls changed
3 (64 bytes, 8 per range, 8 per bucket or moment), whatever its number of tags. When the
headers disagree, the ranks' descriptions of the batch are gathered (two more collectives,
only then) and every rank raises the same error naming the step and the differing calls:
:class:`MismatchError` (nothing of that step merged; the next step goes on; ranks that
skipped a step resynchronise, the batches of the latest step kept for the others' next), or,
where a rank closed, the end of the exchange on every rank. A collective that fails or times
out ends the exchange too (:class:`AggregationError`): every later merge fails at once, so
nothing waits on a group whose messages may be in flight.

Every :class:`Merged` is set or failed, whatever happens: nobody waits on one forever.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import threading
from collections.abc import Callable

import numpy as np

from gpu_summary._distributed import disagreement
from gpu_summary._distributed.collective import (
    AggregationError,
    Collective,
    CollectiveFailed,
    MismatchError,
)
from gpu_summary._distributed.merge import Merge
from gpu_summary._sync import Doorbell, Flag, Waiters

HEADER_WORDS = 8
_REPORT_LIMIT = 1 << 16  # bytes of one rank's description of a batch, for a mismatch's message
_TEXT_LIMIT = 1000  # characters of one call's description, or of a rank's error, in it


class _Batch:
    """The merged calls of one step on this rank, and the jobs waiting for them."""

    __slots__ = ("held", "merges", "step")

    def __init__(self, step: int) -> None:
        self.step = step
        self.merges: list[Merge] = []
        self.held: list[Callable[[], None]] = []


_CLOSE = object()  # the queue's last item: this rank's close marker


def _hash_words(text: str) -> tuple[float, float]:
    digest = hashlib.blake2b(text.encode(), digest_size=12).digest()
    return float(int.from_bytes(digest[:6], "little")), float(int.from_bytes(digest[6:], "little"))


def header(step: int | None, merges: list[Merge], ok: bool) -> np.ndarray:
    """The 8 header words of a batch (``step`` None: the close marker)."""
    if step is None:
        a, b = _hash_words("\0close")
    else:
        a, b = _hash_words("\n".join([str(step)] + [f"{m.signature}\x1f{m.min_words}"
                                                    for m in merges]))  # fmt: skip
    opened, good = float(step is not None), float(ok)
    return np.array([a, -a, b, -b, opened, -opened, good, -good])


def agrees(got: np.ndarray) -> bool:
    """Whether every rank sent the same header (the MIN of each word and of its negation)."""
    return bool(np.all(got[0::2] == -got[1::2]))


class Exchange:
    """One rank's side of a distributed writer's merges: the open batch (caller's thread),
    the sealed ones (bounded queue) and the thread that exchanges them.

    Thread safety: ``add``/``hold``/``seal``/``close`` from the writer's calling thread (a
    distributed writer is called from one thread per rank); ``wait`` and ``raise_error``
    from any.
    """

    def __init__(self, collective: Collective, max_pending: int = 16) -> None:
        self.collective = collective
        self.rank = collective.rank
        self.size = collective.size
        self._max_pending = max_pending
        self._open: _Batch | None = None
        self._lock = threading.Lock()  # the open batch
        # The queue and the states below, under a plain lock (never held across Python code
        # a caller's interrupt could leave it in); the thread sleeps on a doorbell, callers
        # wait as waiters (gpu_summary._sync): a caught Ctrl-C wedges neither side.
        self._state = threading.Lock()
        self._bell = Doorbell()
        self._waiters = Waiters()
        self._queue: collections.deque[_Batch | object] = collections.deque()
        self._busy = False
        self._finished = False  # the thread returned: nothing more is exchanged
        self._ended: BaseException | None = None  # no more collectives, and why
        # MIN words of the last batch every rank agreed on: the next header carries as many
        self._riding = 0
        self._errors: collections.deque[BaseException] = collections.deque()
        self._returned = Flag()
        self._thread = threading.Thread(
            target=self._run, name=f"gpu_summary exchange rank {self.rank}", daemon=True
        )
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------

    def add(self, merge: Merge, step: int) -> None:
        """Put ``merge`` in the batch of ``step`` (sealing the open batch of another step)."""
        with self._lock:
            sealed = None
            if self._open is not None and self._open.step != step:
                sealed, self._open = self._open, None
            if self._open is None:
                self._open = _Batch(step)
            self._open.merges.append(merge)
        if sealed is not None:
            self._submit(sealed)

    def hold(self, release: Callable[[], None]) -> None:
        """Run ``release`` (it queues a job that waits for a merge) once the open batch is
        sealed, at once if none is open: the writer thread then never waits for a merge that
        only a later call on this thread would start."""
        with self._lock:
            if self._open is not None:
                self._open.held.append(release)
                return
        release()

    def seal(self) -> None:
        """Send the open batch (its step ends here on every rank that makes the same call)."""
        with self._lock:
            batch, self._open = self._open, None
        if batch is not None:
            self._submit(batch)

    def wait(self) -> None:
        """Block until every sealed batch was exchanged (or failed): at most about
        ``timeout`` seconds a collective."""
        self._waiters.wait(lambda: bool(self._queue or self._busy) and not self._finished)

    def close(self) -> None:
        """Seal the open batch, send the close marker and wait for the thread's end."""
        try:
            self.seal()  # may raise what a held job met; the marker goes out all the same
        finally:
            self._put(_CLOSE)
            self._returned.wait()  # not Thread.join: an interrupted join() misreports

    def raise_error(self) -> None:
        """Raise (once) the first error the exchange met; after the exchange ended, an
        :class:`AggregationError` on every call, which can merge nothing more.

        Raises:
            MismatchError: ranks disagreed about a step.
            AggregationError: ranks lost contact, or a rank could not reduce its shard.
        """
        with self._state:
            if self._errors:
                error = self._errors.popleft()
                self._errors.clear()
                raise error
            ended = self._ended
        if ended is not None and not self._finished:
            raise AggregationError(
                f"this distributed writer merges nothing more ({ended}); close() it on every "
                "rank, and create a new one to log more"
            )

    @property
    def ended(self) -> BaseException | None:
        """Why the exchange ended early (None: it did not)."""
        return self._ended

    def _submit(self, batch: _Batch) -> None:
        self._put(batch)
        failure = None
        for release in batch.held:  # every job queued, even if one of them raises
            try:
                release()
            except BaseException as exc:  # noqa: BLE001 - the first one is raised below
                failure = failure or exc
        if failure is not None:
            raise failure

    def _put(self, item: _Batch | object) -> None:
        self._waiters.wait(
            lambda: (
                len(self._queue) >= self._max_pending and self._ended is None and not self._finished
            )
        )
        with self._state:
            queued = not self._finished
            if queued:
                self._queue.append(item)
        if queued:
            self._bell.ring()
        elif isinstance(item, _Batch):  # nothing will exchange it
            self._fail(item, self._ended or AggregationError("the writer is closed"))

    # -- the exchange thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._returned.set()

    def _loop(self) -> None:
        while True:
            while not self._queue:
                self._bell.sleep()
            with self._state:
                item = self._queue.popleft()
                self._busy = True
            self._waiters.wake_all()
            try:
                if item is _CLOSE:
                    self._close_exchange()
                else:
                    self._exchange(item)
            except BaseException as exc:  # noqa: BLE001 - a bug must not strand the callers
                self._end(AggregationError(f"the exchange failed: {exc!r}"), exc)
                if isinstance(item, _Batch):
                    self._fail(item, exc)
            finally:
                with self._state:
                    self._busy = False
                    left = []
                    if item is _CLOSE:
                        self._finished = True
                        left = list(self._queue)  # sealed by other threads, too late
                        self._queue.clear()
                for batch in left:
                    if isinstance(batch, _Batch):
                        self._fail(batch, AggregationError("the writer is closed"))
                self._waiters.wake_all()
            if item is _CLOSE:
                return

    def _end(self, reason: BaseException, error: BaseException | None = None) -> None:
        """No more collectives (``reason``); ``error`` (default ``reason``) raised once."""
        with self._state:
            if self._ended is None:
                self._ended = reason
                self._errors.append(reason if error is None else error)
        self._waiters.wake_all()

    def _record(self, error: BaseException) -> None:
        with self._state:
            self._errors.append(error)

    @staticmethod
    def _fail(batch: _Batch, error: BaseException) -> None:
        for merge in batch.merges:
            merge.merged.fail(error)

    def _exchange(self, batch: _Batch) -> None:
        if self._ended is not None:
            self._fail(batch, self._ended)
            return
        merges = batch.merges
        mins_local: list[np.ndarray] = []
        failure: BaseException | None = None
        for merge in merges:
            try:
                words = np.asarray(merge.prepare(), dtype=np.float64).reshape(-1)
                if words.size != merge.min_words:
                    raise RuntimeError(f"{merge.description}: {words.size} MIN words, "
                                       f"{merge.min_words} announced")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - every rank learns it from the header
                failure = exc
                break
            mins_local.append(words)
        pack = np.concatenate(mins_local) if mins_local and failure is None else np.zeros(0)
        try:
            got = self._first(header(batch.step, merges, failure is None), pack)
            while not agrees(got[:HEADER_WORDS]) or got[6] == 0.0:  # a rank failed: all fail
                if not self._disagree(batch, failure, got):
                    return
                got = self._first(header(batch.step, merges, failure is None), pack)
            if pack.size == self._riding:  # the MIN pack came with the header
                mins = got[HEADER_WORDS:]
            else:  # the calls changed (the same way on every rank): a MIN pack of their own
                mins = self.collective.minimum(pack) if pack.size else pack
            self._riding = pack.size
            slices, sums = self._sums(merges, mins, batch.step)
        except CollectiveFailed as exc:
            error = AggregationError(
                f"the merge of step {batch.step} failed: {exc}; this writer's ranks lost "
                "contact (a rank died, stalled past the writer's timeout, or stopped logging), "
                "so it merges nothing more"
            )
            self._end(error)
            self._fail(batch, error)
            return
        if sums is None:
            return
        offset = 0
        for merge, (lo, hi) in zip(merges, slices, strict=True):
            try:
                merge.merged.set(merge.merge(mins[offset : offset + merge.min_words],
                                             sums[lo:hi]))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - this call's record only; raised later
                merge.merged.fail(exc)
                self._record(exc)
            offset += merge.min_words

    def _first(self, words: np.ndarray, pack: np.ndarray) -> np.ndarray:
        """The header's collective, the MIN pack riding with it where it has the size of the
        last agreed batch's (the same on every rank): a step that logs what the one before
        did costs 2 collectives, not 3."""
        riding = pack if pack.size == self._riding else np.full(self._riding, math.inf)
        return self.collective.minimum(np.concatenate([words, riding]))

    def _sums(self, merges: list[Merge], mins: np.ndarray,
              step: int) -> tuple[list[tuple[int, int]], np.ndarray | None]:  # fmt: skip
        """The SUM pack's collective: each call's slice of it, and the pack (None: a rank
        failed to count, every merge of the batch failed)."""
        parts, slices, failure = [np.zeros(1)], [], None
        offset, position = 0, 1
        for merge in merges:
            own = mins[offset : offset + merge.min_words]
            offset += merge.min_words
            try:
                size = merge.sum_size(own)
            except Exception as exc:  # noqa: BLE001 - (from agreed words: on every rank alike)
                failure, size = failure or exc, 0
            words = None
            if failure is None:
                try:
                    words = np.asarray(merge.sums(own), dtype=np.float64).reshape(-1)
                    if words.size != size:
                        raise RuntimeError(f"{merge.description}: {words.size} SUM words, "
                                           f"{size} expected")  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - the pack says so to every rank
                    failure = exc
            parts.append(words if words is not None and failure is None else np.zeros(size))
            slices.append((position, position + size))
            position += size
        parts[0][0] = float(failure is not None)
        total = self.collective.total(np.concatenate(parts))
        if total[0]:
            ours = f"; this rank's: {failure}" if failure is not None else ""
            error = AggregationError(
                f"{int(total[0])} rank(s) could not count their shards of step {step}{ours}; "
                f"step {step} is merged on no rank"
            )
            self._record(error)
            for merge in merges:
                merge.merged.fail(error)
            return slices, None
        return slices, total

    def _disagree(self, batch: _Batch | None, failure: BaseException | None,
                  got: np.ndarray) -> bool:  # fmt: skip
        """Headers differ: gather every rank's description, raise the same error on each.

        Ranks that sent batches of different steps resynchronise: the batches of the latest
        step are kept (True: exchange it again), the others failed, so a rank that skipped a
        step costs that step only. Otherwise every rank's batch fails (False).
        """
        merges = [] if batch is None else batch.merges
        mine = {
            "rank": self.rank,
            "step": None if batch is None else batch.step,
            "closed": batch is None,
            "calls": [m.description for m in merges],
            "error": None if failure is None else f"{type(failure).__name__}: {failure}",
        }
        reports = self._gather_reports(mine)
        message = disagreement.explain(reports)
        someone_closed = got[4] == 0.0
        failed = got[6] == 0.0
        if someone_closed:
            error: BaseException = MismatchError(message)
            self._end(AggregationError(f"ranks stopped agreeing: {message}"), error)
        else:
            error = AggregationError(message) if failed else MismatchError(message)
            self._record(error)
            latest = max(report["step"] for report in reports)
            if (
                not failed
                and batch.step == latest
                and any(report["step"] != latest for report in reports)
            ):
                return True
        if batch is not None:
            self._fail(batch, error)
        return False

    def _gather_reports(self, mine: dict) -> list[dict]:
        if mine["error"] is not None:
            mine["error"] = mine["error"][:_TEXT_LIMIT]
        mine["calls"] = [call[:_TEXT_LIMIT] for call in mine["calls"]]
        data = json.dumps(mine).encode()
        while len(data) > _REPORT_LIMIT and len(mine["calls"]) > 1:  # keep the first calls
            mine["calls"] = [*mine["calls"][: len(mine["calls"]) // 2], "..."]
            data = json.dumps(mine).encode()
        longest = int(-self.collective.minimum(np.array([-float(len(data))]))[0])
        words = np.zeros(1 + longest)
        words[0] = len(data)
        words[1 : 1 + len(data)] = np.frombuffer(data, dtype=np.uint8)
        reports = []
        for part in self.collective.gather(words):
            size = int(part[0])
            reports.append(json.loads(part[1 : 1 + size].astype(np.uint8).tobytes()))
        return reports

    def _close_exchange(self) -> None:
        if self._ended is not None:
            return
        try:
            got = self._first(header(None, [], True), np.zeros(0))
            if agrees(got[:HEADER_WORDS]):
                self.collective.close()
                return
            self._disagree(None, None, got)
        except CollectiveFailed as exc:
            self._end(AggregationError(
                f"close(): the other ranks did not all close within the writer's timeout "
                f"({exc}); what this rank logged since its last merged step is not merged"
            ))  # fmt: skip

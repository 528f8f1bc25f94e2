"""Worker threads that hand results back to the event loop in one hop.

The node keeps the Raft log's writes (one thread: saves stay in order) and its reads (a
few threads, each with its own SQLite connection) off the loop. `loop.run_in_executor` on a
`ThreadPoolExecutor` costs a `concurrent.futures.Future` (with its Condition), an asyncio
Future chained to it and a task wake-up per job: ~76 µs of CPU for a round trip of an empty
job on this machine kind, against ~36 µs for a queue put plus one `call_soon_threadsafe`
(`benchmarks/thread_hop.py`). A single-client write takes one such hop on each of three
nodes, a read one on the node that serves it.

`Lane.post(loop, fn, args, done)` runs `fn(*args)` on a worker and calls `done(result, exc)`
on the loop; `Lane.call(fn, *args)` is the awaitable form. `Lane` is also a
`concurrent.futures.Executor` (`submit`, `shutdown`), so `run_in_executor(lane, ...)` keeps
working for the rare jobs that need nothing faster.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Executor, Future

_STOP = None


class Handle:
    """What a posted job became, readable from any thread once `finished` is true (so a
    closing node can tell a save that completed from one that never ran)."""
    __slots__ = ("finished", "result", "exc", "cancelled")

    def __init__(self):
        self.finished = False
        self.cancelled = False
        self.result = None
        self.exc: BaseException | None = None


def _deliver_future(fut: asyncio.Future, result, exc) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class Lane(Executor):
    def __init__(self, threads: int, name: str):
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    # ---- the fast forms -----------------------------------------------------------
    def post(self, loop, fn, args: tuple, done) -> Handle:
        """Run fn(*args) on a worker; then `done(result, exc)` on `loop` (on the worker itself
        if `loop` is None). Not called if the lane is shut down with the job still queued,
        or the loop is closed by then."""
        if self._closed:
            raise RuntimeError("the lane is shut down")
        h = Handle()
        self._q.put((fn, args, loop, done, h, None))
        return h

    def call(self, fn, *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.post(loop, fn, args, lambda r, e: _deliver_future(fut, r, e))
        return fut

    # ---- concurrent.futures.Executor ----------------------------------------------
    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()

        def run():
            return fn(*args, **kwargs)
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self._q.put((run, (), None, None, Handle(), f))
        return f

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not self._closed:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        item[4].cancelled = True
                        if item[5] is not None:
                            item[5].cancel()
            for _ in self._threads:
                self._q.put(_STOP)
        if wait:
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()

    # ---- a worker -----------------------------------------------------------------
    def _work(self) -> None:
        get = self._q.get
        while True:
            item = get()
            if item is _STOP:
                return
            fn, args, loop, done, h, fut = item
            if fut is not None and not fut.set_running_or_notify_cancel():
                continue
            try:
                result, exc = fn(*args), None
            except BaseException as e:  # noqa: BLE001  (handed to whoever waits for it)
                result, exc = None, e
            h.result, h.exc, h.finished = result, exc, True
            if fut is not None:
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
            elif loop is None:
                done(result, exc)
            else:
                try:
                    loop.call_soon_threadsafe(done, result, exc)
                except RuntimeError:
                    pass           # the loop is closed: nobody is waiting any more
            del item, fn, args, result, exc, h, fut, done

"""server/lanes.py: worker threads that hand each result back to the event loop in one hop
(the node's log writes and reads run there)."""
import asyncio
import threading

import pytest

from ddb_node.server.lanes import Lane


def test_post_runs_on_a_worker_and_calls_done_on_the_loop_with_the_result():
    lane = Lane(1, "t-lane")

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        ran_on = []

        def job(x):
            ran_on.append(threading.current_thread().name)
            return x * 2

        def done(result, exc):
            got.set_result((result, exc, threading.current_thread() is threading.main_thread()))
        h = lane.post(loop, job, (21,), done)
        assert await got == (42, None, True)
        assert ran_on == ["t-lane_0"] and h.finished and h.result == 42 and h.exc is None
    asyncio.run(main())
    lane.shutdown()


def test_an_exception_reaches_done_and_call_raises_it():
    lane = Lane(2, "t-lane")

    def boom():
        raise OSError(5, "Input/output error")

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        h = lane.post(loop, boom, (), lambda r, e: got.set_result(e))
        assert isinstance(await got, OSError) and h.exc is not None
        with pytest.raises(OSError):
            await lane.call(boom)
        assert await lane.call(lambda a, b: a + b, 1, 2) == 3
    asyncio.run(main())
    lane.shutdown()


def test_one_thread_runs_jobs_in_the_order_they_were_posted():
    """The log's lane has one thread: saves stay in order."""
    lane = Lane(1, "t-lane")
    seen = []

    async def main():
        await asyncio.gather(*(lane.call(seen.append, i) for i in range(200)))
    asyncio.run(main())
    assert seen == list(range(200))
    lane.shutdown()


def test_run_in_executor_and_submit_still_work():
    lane = Lane(2, "t-lane")
    assert lane.submit(pow, 2, 10).result(timeout=5) == 1024

    async def main():
        return await asyncio.get_running_loop().run_in_executor(lane, sum, [1, 2, 3])
    assert asyncio.run(main()) == 6
    lane.shutdown()
    with pytest.raises(RuntimeError):
        lane.submit(pow, 2, 2)


def test_shutdown_waits_for_the_job_in_flight_and_cancels_the_queued_ones():
    """close(): a save in flight completes first; one never started is not reported done."""
    lane = Lane(1, "t-lane")
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "written"
    first = lane.post(None, slow, (), lambda r, e: None)
    second = lane.post(None, slow, (), lambda r, e: None)
    assert started.wait(10)
    lane.shutdown(wait=False, cancel_futures=True)     # the second is still queued
    release.set()
    lane.shutdown(wait=True)
    assert first.finished and first.result == "written"
    assert not second.finished and second.cancelled

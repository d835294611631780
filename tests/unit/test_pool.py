"""The pool's slots (service/db/slots.py): arrival order, the wait's bound, each user's share, and
no slot lost to a waiter that gives up; and platform URLs made fit for asyncpg (service/db/pool.py).
Over HTTP, tests/web/test_errors.py shows the timeout as a 503."""

from __future__ import annotations

import asyncio

import pytest

from service.db.pool import asyncpg_dsn
from service.db.slots import PoolSlots


async def _held(slots: PoolSlots, name: str, order: list[str], release: asyncio.Event) -> None:
    await slots.acquire()
    order.append(name)
    await release.wait()
    slots.release()


def test_waiters_are_served_in_arrival_order() -> None:
    async def run() -> list[str]:
        slots, order, go = PoolSlots(1, timeout=60), [], asyncio.Event()
        await slots.acquire()
        waiters = []
        for name in "abcde":
            waiters.append(asyncio.create_task(_held(slots, name, order, go)))
            await asyncio.sleep(0)  # in line before the next arrives
        go.set()
        slots.release()
        async with asyncio.timeout(5):  # a lost slot would leave them waiting
            await asyncio.gather(*waiters)
        return order

    assert asyncio.run(run()) == list("abcde")


def test_a_wait_past_the_timeout_raises_and_frees_nothing_it_did_not_take() -> None:
    async def run() -> None:
        slots = PoolSlots(1, timeout=0.05)
        await slots.acquire()
        with pytest.raises(TimeoutError):
            await slots.acquire()
        slots.release()
        await slots.acquire()  # the one slot, free again: not counted twice, not lost
        with pytest.raises(TimeoutError):
            await slots.acquire()

    asyncio.run(run())


@pytest.mark.parametrize(
    "handed_over", [False, True], ids=["cancelled-while-waiting", "cancelled-once-handed-the-slot"]
)
def test_a_cancelled_waiter_gives_its_turn_to_the_next(handed_over: bool) -> None:
    async def run() -> list[str]:
        slots, order, go = PoolSlots(1, timeout=60), [], asyncio.Event()
        await slots.acquire()
        first = asyncio.create_task(_held(slots, "first", order, go))
        await asyncio.sleep(0)
        second = asyncio.create_task(_held(slots, "second", order, go))
        await asyncio.sleep(0)
        if handed_over:
            slots.release()  # the slot is now first's, but first has not run yet
            first.cancel()
        else:
            first.cancel()
            await asyncio.sleep(0)
            slots.release()
        go.set()
        async with asyncio.timeout(5):  # a lost slot would leave them waiting
            await second
            await slots.acquire()  # and once second is done, the slot is free: none was lost
        assert first.cancelled()
        return order

    assert asyncio.run(run()) == ["second"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql://u:p@h/db"),
        (
            "postgresql://u:p@ep-x.neon.tech/db?sslmode=require&channel_binding=require",
            "postgresql://u:p@ep-x.neon.tech/db?sslmode=require",
        ),
    ],
)
def test_platform_urls_are_translated_for_asyncpg(url: str, expected: str) -> None:
    assert asyncpg_dsn(url) == expected


def test_no_holder_takes_more_than_its_share_and_others_go_first() -> None:
    async def run() -> list[str]:
        slots, order, go = PoolSlots(4, timeout=60, share=2), [], asyncio.Event()
        for _ in range(2):
            await slots.acquire("greedy")
        # The greedy holder's third request waits; another user's requests, arriving after it, go first.
        late = asyncio.create_task(_holder_held(slots, "greedy", order, go))
        await asyncio.sleep(0)
        others = [asyncio.create_task(_holder_held(slots, f"other-{i}", order, go)) for i in range(2)]
        await asyncio.sleep(0)
        assert order == ["other-0", "other-1"]
        go.set()
        slots.release("greedy")
        async with asyncio.timeout(5):
            await asyncio.gather(late, *others)
        return order

    assert asyncio.run(run()) == ["other-0", "other-1", "greedy"]


def test_a_waiter_at_its_share_never_loses_a_slot_that_frees() -> None:
    async def run() -> None:
        slots = PoolSlots(2, timeout=60, share=1)
        await slots.acquire("a")
        blocked = asyncio.create_task(slots.acquire("a"))
        await asyncio.sleep(0)
        await slots.acquire("b")  # the free slot is b's to take: a is at its share
        slots.release("b")
        slots.release("a")  # now a's waiter takes one
        async with asyncio.timeout(5):
            await blocked
        slots.release("a")
        for holder in ("x", "y"):  # both slots are free again
            await slots.acquire(holder)

    asyncio.run(run())


async def _holder_held(slots: PoolSlots, holder: str, order: list[str], release: asyncio.Event) -> None:
    await slots.acquire(holder)
    order.append(holder)
    await release.wait()
    slots.release(holder)

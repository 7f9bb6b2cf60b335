# SPDX-License-Identifier: Apache-2.0
"""The KV layer: create-if-absent, compare-and-swap, delete/purge with an expected revision,
watches and per-key TTLs, against a real server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import jetjobs

from conftest import MakeApp, wait_for


async def next_entry(watch: jetjobs.KvWatch) -> jetjobs.KvEntry:
    return await asyncio.wait_for(watch.__anext__(), 20)


async def test_create_update_delete_and_purge(make_app: MakeApp) -> None:
    app = make_app("KVQ")
    kv = await app.kv(jetjobs.KvBucket("LOCKS", description="test locks", history=5))
    assert kv.bucket == "LOCKS"
    assert await kv.get("a") is None

    first = await kv.create("a", b"one")
    with pytest.raises(jetjobs.KeyExists):
        await kv.create("a", b"again")
    entry = await kv.get("a")
    assert entry is not None
    assert (entry.key, entry.value, entry.revision, entry.operation) == ("a", b"one", first, "put")

    second = await kv.update("a", b"two", first)
    assert second > first
    with pytest.raises(jetjobs.RevisionMismatch):
        await kv.update("a", b"stale", first)
    with pytest.raises(jetjobs.RevisionMismatch):
        await kv.delete("a", expected_revision=first)
    assert (await kv.get("a")).value == b"two"  # type: ignore[union-attr]

    await kv.put("b", b"bee")
    assert sorted(await kv.keys()) == ["a", "b"]
    await kv.delete("a", expected_revision=second)
    assert await kv.get("a") is None
    assert await kv.create("a", b"after delete") > second  # a deleted key can be created again
    await kv.purge("b")
    assert await kv.get("b") is None
    assert await kv.keys() == ["a"]

    same = await app.kv("LOCKS")  # an existing bucket is used as it is
    assert (await same.get("a")).value == b"after delete"  # type: ignore[union-attr]
    await app.close()


async def test_watch_sees_puts_and_deletes(make_app: MakeApp) -> None:
    app = make_app("KVW")
    kv = await app.kv(jetjobs.KvBucket("WATCHED", history=5))
    before = await kv.put("jobs.old", b"0")
    watch = await kv.watch("jobs.>")
    latest = await next_entry(watch)  # the latest entry of each key first
    assert (latest.key, latest.revision) == ("jobs.old", before)

    rev = await kv.put("jobs.a", b"1")
    await kv.put("other", b"not watched")
    await kv.delete("jobs.a")
    put = await next_entry(watch)
    assert (put.key, put.value, put.revision, put.operation) == ("jobs.a", b"1", rev, "put")
    deleted = await next_entry(watch)
    assert (deleted.key, deleted.operation) == ("jobs.a", "delete")
    watch.close()
    assert [e async for e in watch] == []

    # From a revision: every change since that the bucket's history still holds.
    replay = await kv.watch(revision=rev)
    assert [(await next_entry(replay)).key for _ in range(3)] == ["jobs.a", "other", "jobs.a"]
    replay.close()
    await app.close()


async def test_per_key_ttl_expires_the_key(make_app: MakeApp) -> None:
    app = make_app("KVT")
    bucket = jetjobs.KvBucket("LEASES", per_key_ttl=True, max_age=timedelta(hours=1))
    assert (bucket.name, bucket.per_key_ttl, bucket.max_age) == (
        "LEASES",
        True,
        timedelta(hours=1),
    )
    kv = await app.kv(bucket)
    with pytest.raises(jetjobs.InvalidOption):
        await kv.create_with_ttl("lease", b"me", timedelta(milliseconds=500))
    await kv.create_with_ttl("lease", b"me", 1)
    assert await kv.get("lease") is not None
    with pytest.raises(jetjobs.KeyExists):
        await kv.create_with_ttl("lease", b"you", 1)

    async def gone() -> bool:
        return await kv.get("lease") is None

    await wait_for("the key's TTL to remove it", gone, timeout=20)
    await kv.create("lease", b"you")  # free to take once expired
    await app.close()

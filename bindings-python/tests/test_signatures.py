# SPDX-License-Identifier: Apache-2.0
"""ed25519 signatures: the engine signs on enqueue and verifies before handling."""

from __future__ import annotations

from pathlib import Path

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final

SEED = "07" * 32
OTHER_SEED = "08" * 32


def public_key(seed: str) -> str:
    return jetjobs.TaskSigner.from_hex(seed).verifier().to_hex()


async def test_signed_tasks_verify_and_others_are_terminated(make_app: MakeApp) -> None:
    worker = make_app("SIGNED", verification_key=public_key(SEED))
    signed = make_app("SIGNED", signing_key=SEED)
    forged = make_app("SIGNED", signing_key=bytes.fromhex(OTHER_SEED))
    unsigned = make_app("SIGNED")

    @worker.task("job")
    async def job(task: jetjobs.Task) -> str:
        return task.signature[:8]

    good = await signed.enqueue("job", {"n": 1})
    assert len(good.signature) == 128
    jetjobs.TaskSigner.from_hex(SEED).verifier().verify(good)
    assert good.signature_message().startswith(f"{good.id}:SIGNED:job:10:")
    bad = await forged.enqueue("job", {"n": 2})
    plain = await unsigned.enqueue("job", {"n": 3})
    assert plain.signature == ""

    async with running(worker):
        # Loaded without a verification key: the worker's app would refuse the bad ones.
        ok, forged_done, plain_done = await wait_final(unsigned, [good.id, bad.id, plain.id])
    assert ok.state == "complete" and ok.result is not None
    assert ok.result.payload == good.signature[:8]
    assert (forged_done.state, forged_done.last_err) == ("terminated", "invalid task signature")
    assert (plain_done.state, plain_done.last_err) == ("terminated", "task is not signed")


async def test_optional_signatures_accept_unsigned_tasks(make_app: MakeApp, tmp_path: Path) -> None:
    key_file = tmp_path / "key.pub"
    key_file.write_text(public_key(SEED) + "\n")
    seed_file = tmp_path / "seed"
    seed_file.write_text(SEED)
    worker = make_app("OPTIONAL", verification_key_file=key_file, signatures_optional=True)
    signed = make_app("OPTIONAL", signing_seed_file=seed_file)

    @worker.task("job")
    def job(task: jetjobs.Task) -> bool:
        return bool(task.signature)

    ids = [(await signed.enqueue("job")).id, (await worker.enqueue("job")).id]
    async with running(worker):
        tasks = await wait_final(worker, ids)
    assert [(t.state, t.result.payload if t.result else None) for t in tasks] == [
        ("complete", True),
        ("complete", False),
    ]


async def test_loading_verifies_signatures(make_app: MakeApp) -> None:
    strict = make_app("LOADV", verification_key=jetjobs.TaskVerifier.from_hex(public_key(SEED)))
    plain = await make_app("LOADV").enqueue("job")
    with pytest.raises(jetjobs.TaskNotSigned, match="task is not signed"):
        await strict.load_task(plain.id)
    forged = await make_app("LOADV", signing_key=OTHER_SEED).enqueue("job")
    with pytest.raises(jetjobs.SignatureInvalid) as err:
        await strict.load_task(forged.id)
    assert err.value.code == "SignatureInvalid"
    with pytest.raises(jetjobs.TaskNotSigned):
        jetjobs.TaskVerifier.from_hex(public_key(SEED)).verify(plain)
    jetjobs.TaskVerifier.from_hex(public_key(SEED)).verify(plain, optional=True)

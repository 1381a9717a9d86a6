"""Scenarios 2, 3, 5, 6: the storage engine under a power cut, corruption, a full disk, EIO.

All run in-process on ``PartitionLog`` through ``FaultyFileSystem`` (LazyFS
cannot be installed here), with the deterministic batches of
``tests.storage.appender``, so every stored batch can be compared byte for
byte with what was appended.

* ``power_loss``: append and commit ("ack") batches, cut the power at a random
  moment (every unsynced byte of every file is dropped), reopen with a plain
  file system. ``always``: acked batches lost. ``interval:MS`` (an injected
  clock; ``tick`` runs as the broker's housekeeping would): how far back the
  loss reaches, to compare with the documented window.
* ``corruption``: every byte of the tail batch flipped (synced and checkpointed,
  and synced after the last checkpoint, where only the durable mark says it
  was acknowledged), every cut of an unacknowledged tail batch (a torn write),
  and random bit flips in sealed segments: crashes, bad batches served, acked
  batches gone without a corruption report. Also, for the record, the same
  flips with the durable mark lost (a power cut before writeback): recovery
  then falls back to the torn-tail rule and cuts the batch (docs/reliability.md,
  Known limits).
* ``disk_full`` and ``eio``: no commit returns after the fault, reads go on,
  and (ENOSPC) appends resume when space returns.
"""

from __future__ import annotations

import errno
import random
import shutil
from pathlib import Path
from typing import Any

from tests.storage.appender import batch_for, id_of, logical_end, read_batches
from tidings.errors import DiskFullError, LogFailedError, StorageError
from tidings.records import check_batch
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog
from tidings.storage import mark as durable_mark
from tidings.storage.faults import FaultyFileSystem

SMALL = {"max_segment_bytes": 24 * 1024, "index_interval_bytes": 1024, "checkpoint_interval_bytes": 8 * 1024}


def config(fsync: str) -> LogConfig:
    return LogConfig(fsync=FsyncPolicy.parse(fsync), **SMALL)  # type: ignore[arg-type]


def stored_ids(directory: Path, cfg: LogConfig) -> tuple[dict[int, int], bool]:
    """Batch id -> base offset of everything the reopened log serves, and whether it reports damage."""
    with PartitionLog(str(directory), cfg) as log:
        found = {id_of(bytes(data)): base for base, data in read_batches(log)}
        return found, log.corruption is not None


# -- 2. power loss -------------------------------------------------------------------------


def power_loss(rounds: int, workdir: Path, *, interval_ms: int = 50, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    lost_always = acked_always = 0
    worst_window_ms = 0
    lost_interval = acked_interval = 0
    for round_number in range(rounds):
        policy = "always" if round_number % 2 == 0 else f"interval:{interval_ms}"
        directory = workdir / f"power-{round_number}"
        now = [1_000_000]
        fs = FaultyFileSystem(lose_unsynced=True)
        log = PartitionLog(str(directory), config(policy), fs=fs, clock=lambda now=now: now[0])
        acked: dict[int, tuple[int, int]] = {}  # id -> (base offset, ack time)
        for number in range(round_number * 1000, round_number * 1000 + rng.randrange(5, 200)):
            now[0] += rng.randrange(0, 8)  # ms between appends
            result = log.append(batch_for(number))
            log.tick()  # the broker's housekeeping: an interval fsync when due
            log.commit(result.last_offset)
            acked[number] = (result.base_offset, now[0])
        cut_at = now[0]
        fs.power_cut()
        del log  # abandoned, as the process died with the power
        found, _ = stored_ids(directory, config(policy))
        lost = [n for n, (base, _) in acked.items() if found.get(n) != base]
        if policy == "always":
            acked_always += len(acked)
            lost_always += len(lost)
        else:
            acked_interval += len(acked)
            lost_interval += len(lost)
            if lost:
                worst_window_ms = max(worst_window_ms, cut_at - min(acked[n][1] for n in lost))
        shutil.rmtree(directory)
    return {
        "rounds": rounds,
        "always": {"acked": acked_always, "lost": lost_always},
        f"interval:{interval_ms}": {
            "acked": acked_interval,
            "lost": lost_interval,
            "worst_loss_window_ms": worst_window_ms,
            "documented_window_ms": interval_ms,
        },
    }


# -- 3. torn writes and bit flips ----------------------------------------------------------


def _build(directory: Path, batches: int, *, checkpoint_tail: bool, ack_last: bool = True) -> dict[int, int]:
    """Append ``batches`` and commit them (``ack_last=False``: all but the last, which is written only)."""
    cfg = config("always")
    with PartitionLog(str(directory), cfg) as log:
        placed: dict[int, int] = {}
        for number in range(batches):
            result = log.append(batch_for(number))
            if ack_last or number < batches - 1:
                log.commit(result.last_offset)
            placed[number] = result.base_offset
        if checkpoint_tail:
            return placed  # close() checkpoints everything
        # Leave as a kill -9 would: synced, but the checkpoint behind the last batch.
        log._failed = LogFailedError("abandoned by the reliability suite")
    return placed


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def _restore(directory: Path, image: dict[str, bytes]) -> None:
    for path in directory.iterdir():
        if path.name not in image:
            path.unlink()
    for name, data in image.items():
        (directory / name).write_bytes(data)


def _check(directory: Path, placed: dict[int, int], counts: dict[str, int], *, tail: int | None) -> None:
    """Open the damaged log and classify what it does; ``tail`` is the id allowed to be cut (torn)."""
    try:
        with PartitionLog(str(directory), config("always")) as log:
            reported = log.corruption is not None
            offset, served = log.start_offset, []
            while offset < log.high_watermark:
                try:
                    result = log.read(offset, 1 << 20)
                except StorageError:
                    reported = True
                    break
                if not result.batch_count:
                    break
                data = bytes(result.data)
                position = 0
                while position < len(data):
                    try:
                        header = check_batch(data, position)
                    except Exception:
                        counts["bad_batches_served"] += 1
                        break
                    served.append(id_of(data, position, header))
                    position += header.length
                offset = result.next_offset
    except StorageError:
        counts["refused_to_open"] += 1
        return
    except Exception:
        counts["crashes"] += 1
        return
    missing = [n for n in placed if n not in served]
    if missing and not reported:
        if missing == [tail]:
            counts["tail_cut"] += 1
        else:
            counts["silent_deletions"] += 1
    counts["reported"] += reported


def _outcomes() -> dict[str, int]:
    return dict.fromkeys(
        ("crashes", "bad_batches_served", "silent_deletions", "tail_cut", "reported", "refused_to_open"), 0
    )


def _tail(image: dict[str, bytes]) -> tuple[str, bytes, int, int]:
    """The last segment's name, its bytes, and where its last batch (id 39) starts and ends.

    After a kill -9 the active segment's file runs on past its last batch into
    the zero-filled room the log preallocated (``PartitionLog.preallocate``):
    the batch ends at the segment's logical end, not at the file's.
    """
    last_segment = max(name for name in image if name.endswith(".log"))
    data = image[last_segment]
    end = logical_end(data)
    return last_segment, data, end - len(batch_for(39)), end


def corruption(flips: int, workdir: Path, *, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for case, checkpointed in (("tail_checkpointed", True), ("tail_synced_after_checkpoint", False)):
        directory = workdir / case
        placed = _build(directory, 40, checkpoint_tail=checkpointed)
        image = _snapshot(directory)
        last_segment, data, start, end = _tail(image)
        mark_lost = _outcomes()
        for lose_mark, counts in ((False, _outcomes()), (True, mark_lost)):
            if lose_mark and checkpointed:
                continue  # the checkpoint covers the batch: the mark adds nothing
            for position in range(start, end):  # every byte of the tail batch, flipped
                damaged = bytearray(data)
                damaged[position] ^= 1 << rng.randrange(8)
                (directory / last_segment).write_bytes(bytes(damaged))
                if lose_mark:  # a power cut before writeback: the documented limit, counted apart
                    (directory / durable_mark.FILENAME).unlink()
                _check(directory, placed, counts, tail=39 if lose_mark else None)
                _restore(directory, image)
            if not lose_mark:
                results[case] = {"flipped_bytes": end - start, "flips": counts}
        if checkpointed:
            continue
        results[case]["mark_lost"] = mark_lost
        # A torn write can only hit bytes that were never synced, so never acknowledged.
        directory = workdir / "tail_unacknowledged"
        placed = _build(directory, 40, checkpoint_tail=False, ack_last=False)
        image = _snapshot(directory)
        last_segment, data, start, end = _tail(image)
        torn = _outcomes()
        for cut in range(start, end):  # every torn write of it
            # The write tore inside the preallocated room: what follows the cut is its zeros
            # (a file with no room simply ends at the cut).
            (directory / last_segment).write_bytes(data[:cut] + bytes(len(data) - cut))
            _check(directory, placed, torn, tail=39)
            _restore(directory, image)
        results[case].update(torn_cuts=end - start, torn=torn, room_bytes=len(data) - end)
    directory = workdir / "sealed"
    placed = _build(directory, 200, checkpoint_tail=True)
    image = _snapshot(directory)
    sealed = sorted(name for name in image if name.endswith(".log"))[:-1]
    counts = _outcomes()
    for _ in range(flips):
        name = rng.choice(sealed)
        damaged = bytearray(image[name])
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        (directory / name).write_bytes(bytes(damaged))
        _check(directory, placed, counts, tail=None)
        _restore(directory, image)
    results["sealed_random_flips"] = {"flips": flips, "segments": len(sealed), "outcome": counts}
    return results


# -- 5. disk full and 6. EIO -------------------------------------------------------------------


def disk_full(rounds: int, workdir: Path, *, seed: int = 5) -> dict[str, Any]:
    rng = random.Random(seed)
    acks_after_enospc = reads_failed = resumed = refusals = 0
    for round_number in range(rounds):
        fs = FaultyFileSystem()
        directory = workdir / f"full-{round_number}"
        with PartitionLog(str(directory), config("always"), fs=fs) as log:
            before = {}
            for number in range(rng.randrange(1, 30)):
                result = log.append(batch_for(number))
                log.commit(result.last_offset)
                before[number] = result.base_offset
            fs.fill(after=rng.randrange(0, 3000))
            full = False
            for number in range(100, 140):
                try:
                    result = log.append(batch_for(number))
                    log.commit(result.last_offset)
                    before[number] = result.base_offset
                    if full:
                        acks_after_enospc += 1
                except DiskFullError:
                    full = True
                    refusals += 1
            try:
                served = {id_of(bytes(d)): b for b, d in read_batches(log)}
                reads_failed += served != before
            except StorageError:
                reads_failed += 1
            fs.refill()
            result = log.append(batch_for(999))
            log.commit(result.last_offset)
            resumed += 1
        shutil.rmtree(directory)
    return {
        "rounds": rounds,
        "refused_appends": refusals,
        "acks_after_enospc": acks_after_enospc,
        "reads_failed": reads_failed,
        "resumed_without_restart": resumed,
    }


def eio(rounds: int, workdir: Path, *, seed: int = 6) -> dict[str, Any]:
    rng = random.Random(seed)
    acks_after_eio = stopped = fsync_retries = 0
    for round_number in range(rounds):
        fs = FaultyFileSystem()
        directory = workdir / f"eio-{round_number}"
        log = PartitionLog(str(directory), config("always"), fs=fs)
        for number in range(rng.randrange(1, 20)):
            result = log.append(batch_for(number))
            log.commit(result.last_offset)
        if round_number % 2:
            fs.fail_syncs()
        else:
            fs.fail_writes(suffix=".log")
        failed = False
        syncs_at_failure = 0
        for number in range(100, 120):
            try:
                result = log.append(batch_for(number))
                log.commit(result.last_offset)
                if failed:
                    acks_after_eio += 1
            except LogFailedError:
                if not failed:
                    syncs_at_failure = fs.syncs
                failed = True
            except OSError as exc:  # a raw EIO escaping the log would be a bug
                assert exc.errno != errno.EIO, exc
        stopped += failed and log.failed is not None
        fsync_retries += fs.syncs - syncs_at_failure if failed else 0
        log.close()
        shutil.rmtree(directory)
    return {
        "rounds": rounds,
        "acks_after_eio": acks_after_eio,
        "partitions_stopped": stopped,
        "fsync_retries_after_failure": fsync_retries,
    }

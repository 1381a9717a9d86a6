"""Power cuts, torn writes, bit flips, a full disk and EIO on the storage engine (scenarios 2, 3, 5, 6)."""

from __future__ import annotations

import pytest

from tests.reliability import storage_faults
from tests.reliability.sizes import CI
from tidings.errors import LogCorruptedError
from tidings.storage import PartitionLog


def test_a_power_cut_loses_no_acked_batch_under_always_and_stays_in_the_window_under_interval(tmp_path):
    figures = storage_faults.power_loss(CI["power_loss"], tmp_path)
    assert figures["always"]["acked"] > 0 and figures["always"]["lost"] == 0, figures
    window = figures["interval:50"]
    assert window["worst_loss_window_ms"] <= window["documented_window_ms"], figures


def test_flips_and_tears_never_crash_serve_bad_batches_or_delete_silently(tmp_path):
    figures = storage_faults.corruption(CI["corruption_flips"], tmp_path)
    for case in ("tail_checkpointed", "tail_synced_after_checkpoint"):
        outcome = figures[case]["flips"]
        assert (outcome["crashes"], outcome["bad_batches_served"], outcome["silent_deletions"]) == (0, 0, 0)
    for case in ("tail_checkpointed", "tail_synced_after_checkpoint"):
        # Acknowledged, so every flip is reported: the durable mark covers what the checkpoint does not.
        assert figures[case]["flips"]["reported"] == figures[case]["flipped_bytes"], figures[case]
        assert figures[case]["flips"]["tail_cut"] == 0, figures[case]
    torn = figures["tail_synced_after_checkpoint"]["torn"]
    assert torn["tail_cut"] == figures["tail_synced_after_checkpoint"]["torn_cuts"], torn
    sealed = figures["sealed_random_flips"]["outcome"]
    assert (sealed["crashes"], sealed["bad_batches_served"], sealed["silent_deletions"]) == (0, 0, 0), sealed


def test_a_full_disk_refuses_fast_keeps_reads_and_resumes_without_restart(tmp_path):
    figures = storage_faults.disk_full(CI["disk_full"], tmp_path)
    assert figures["refused_appends"] > 0
    assert (figures["acks_after_enospc"], figures["reads_failed"]) == (0, 0), figures
    assert figures["resumed_without_restart"] == figures["rounds"]


def test_eio_stops_the_partition_with_no_ack_and_no_fsync_retry(tmp_path):
    figures = storage_faults.eio(CI["eio"], tmp_path)
    assert figures["acks_after_eio"] == 0 and figures["fsync_retries_after_failure"] == 0, figures
    assert figures["partitions_stopped"] == figures["rounds"]


def test_a_flipped_record_count_in_a_sealed_segment_is_reported_not_raised_as_an_index_error(tmp_path):
    """Regression: record_count is covered by the batch CRC, not the header CRC, so a header walk
    trusted it, found the next batch at the "wrong" offset and raised ``IndexMismatch`` out of
    ``PartitionLog.read`` (found by the 10,000 random flips). It is corruption: reported, stopped."""
    directory = tmp_path / "log"
    storage_faults._build(directory, 200, checkpoint_tail=True)
    first_sealed = sorted(directory.glob("*.log"))[0]
    data = bytearray(first_sealed.read_bytes())
    second = int.from_bytes(data[16:20], "little")  # the first batch's length: where the second starts
    data[second + 30] ^= 0x04  # the second batch's record_count
    first_sealed.write_bytes(bytes(data))
    with PartitionLog(str(directory), storage_faults.config("always")) as log:
        with pytest.raises(LogCorruptedError):
            offset = log.start_offset
            while offset < log.high_watermark:
                offset = log.read(offset, 1 << 20).next_offset
        assert log.corruption is not None

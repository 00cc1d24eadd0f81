"""One writer per DST: the lease is taken atomically, renewed, taken over after its TTL,
and lost visibly; locally and on a real S3 server (SeaweedFS)."""

import threading
import time

import pytest

from clear_ray.lease import DstLease, LeaseHeld, read_holder


@pytest.fixture(params=["local", "s3"])
def dst(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "dst"), None
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return f"{bucket}/dst", server.storage_options()


def test_a_second_run_finds_the_lease_held_and_names_the_holder(dst):
    uri, options = dst
    first = DstLease(uri, "run-1", ttl_s=30, storage_options=options).acquire()
    try:
        with pytest.raises(LeaseHeld) as held:
            DstLease(uri, "run-2", ttl_s=30, storage_options=options).acquire()
        message = str(held.value)
        assert "run run-1 on host" in message and "pid" in message and "since" in message
        assert "\n" not in message
        # Bounded wait: still held when the timeout passes.
        started = time.monotonic()
        with pytest.raises(LeaseHeld):
            DstLease(uri, "run-3", ttl_s=30, storage_options=options).acquire(wait=True, timeout_s=1.0, poll_s=0.2)
        assert time.monotonic() - started < 10
    finally:
        first.release()
    assert read_holder(uri, options) is None
    DstLease(uri, "run-2", ttl_s=30, storage_options=options).acquire().release()


def test_the_heartbeat_keeps_a_short_lease_alive(dst):
    uri, options = dst
    lease = DstLease(uri, "run-1", ttl_s=1.5, storage_options=options).acquire()
    try:
        time.sleep(3.5)  # > 2 TTLs: only renewals keep it
        assert not lease.lost
        with pytest.raises(LeaseHeld):
            DstLease(uri, "run-2", ttl_s=1.5, storage_options=options).acquire()
    finally:
        lease.release()


def test_a_dead_holder_is_taken_over_after_its_ttl_and_learns_it_lost(dst):
    uri, options = dst
    dead = DstLease(uri, "dead", ttl_s=5.0, storage_options=options).acquire()
    dead._stop.set()  # the holder stops renewing, as a killed driver would
    dead._thread.join()
    with pytest.raises(LeaseHeld):
        DstLease(uri, "early", ttl_s=5.0, storage_options=options).acquire()  # not expired yet
    time.sleep(5.5)
    taker = DstLease(uri, "taker", ttl_s=5.0, storage_options=options).acquire()
    try:
        assert read_holder(uri, options).run_id == "taker"
        # The old holder comes back (it was only paused): its next renewal fails and says so.
        dead._stop.clear()
        dead._thread = threading.Thread(target=dead._heartbeat, daemon=True)
        dead._thread.start()
        deadline = time.monotonic() + 20
        while not dead.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dead.lost and "now held by run taker" in dead._lost_reason
        dead.release()  # must not delete the taker's lease
        assert read_holder(uri, options).run_id == "taker"
    finally:
        taker.release()


def test_of_many_takers_of_an_expired_lease_exactly_one_wins(dst):
    uri, options = dst
    dead = DstLease(uri, "dead", ttl_s=0.5, storage_options=options).acquire()
    dead._stop.set()
    dead._thread.join()
    time.sleep(0.8)
    winners, losers = [], []
    barrier = threading.Barrier(6)

    def take(i):
        lease = DstLease(uri, f"taker-{i}", ttl_s=30, storage_options=options)
        barrier.wait()
        try:
            winners.append(lease.acquire())
        except LeaseHeld:
            losers.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(winners) == 1 and len(losers) == 5
        assert read_holder(uri, options).run_id == winners[0].run_id
    finally:
        for lease in winners:
            lease.release()

"""Storage clients: one remote client per process and options, reused, never listing stale."""

import os

from clear_ray import storage


def test_a_remote_client_is_reused_and_sees_what_other_writers_change(s3_server, s3_bucket):
    options = s3_server.storage_options()
    client, path = storage.filesystem(f"{s3_bucket}/dir", options)
    assert path == f"{s3_bucket[len('s3://'):]}/dir"
    assert storage.filesystem(f"{s3_bucket}/other", dict(options))[0] is client
    # Other credentials (or another endpoint) are another client.
    assert storage.filesystem(f"{s3_bucket}/dir", {**options, "secret": "other"})[0] is not client

    assert client.find(path) == []
    another_writer = s3_server.filesystem()  # an actor, a concurrent run
    another_writer.pipe({f"{path}/a": b"1", f"{path}/b": b"2"})
    assert client.find(path) == [f"{path}/a", f"{path}/b"]
    another_writer.rm_file(f"{path}/a")
    assert client.find(path) == [f"{path}/b"]
    assert client.ls(path, detail=False) == [f"{path}/b"]
    assert not client.exists(f"{path}/a")


def test_a_forked_child_makes_its_own_client(s3_server, s3_bucket):
    options = s3_server.storage_options()
    parent_client, path = storage.filesystem(f"{s3_bucket}/x", options)
    parent_client.pipe_file(path, b"from the parent")
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report (own client?, content) and leave without cleanup
        try:
            client, _ = storage.filesystem(f"{s3_bucket}/x", options)
            answer = b"own" if client is not parent_client else b"shared"
            os.write(write_fd, answer + b":" + client.cat_file(path))
        finally:
            os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(child, 0)
    with os.fdopen(read_fd, "rb") as pipe:
        assert pipe.read() == b"own:from the parent"
    assert status == 0
    assert storage.filesystem(f"{s3_bucket}/x", options)[0] is parent_client


def test_a_child_forked_while_another_thread_makes_a_client_does_not_hang(s3_server, s3_bucket):
    """The fork copies the client lock as it is: held, when another thread of the parent
    was making a client at that moment, and never released in the child."""
    import signal
    import time

    options = s3_server.storage_options()
    storage.filesystem(f"{s3_bucket}/y", options)[0].pipe_file(f"{s3_bucket[len('s3://'):]}/y", b"ok")
    with storage._CLIENTS_LOCK:  # as if another thread were inside filesystem() now
        child = os.fork()
        if child == 0:
            try:
                client, path = storage.filesystem(f"{s3_bucket}/y", options)
                os._exit(0 if client.cat_file(path) == b"ok" else 1)
            finally:
                os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    raise AssertionError("the forked child hung on the client lock it inherited held")

"""The scripts a newcomer runs refuse, clearly, what would break another system or run: a port
another process holds, a second run of the tests at once."""

import os
import socket
import subprocess

import pytest

from tests.support import REPO, RUN, stack, stack_env


def test_the_stack_refuses_a_port_that_another_process_holds():
    """Ensure a component whose port is taken is not started beside it (nor the holder reused): the start
    fails and names the holder."""
    port = int(stack_env("POSTSRSD_FORWARD_PORT"))
    stack("stop", "postsrsd")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the stopped one's connections in TIME_WAIT
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run([str(REPO / "scripts" / "stack.sh"), "start", "postsrsd"], capture_output=True, text=True)
    finally:
        holder.close()
        stack("start", "postsrsd")

    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "already held by" in done.stderr, done.stderr
    assert f"pid={os.getpid()}," in done.stderr, done.stderr  # the holder, named


def test_a_second_run_of_the_tests_is_refused_while_one_runs():
    """Ensure scripts/test.sh refuses to start while this run (started by it) goes on, naming its pid."""
    recorded = (RUN / "tests.pid").read_text().strip() if (RUN / "tests.pid").exists() else ""
    if recorded != str(os.getpid()):
        pytest.skip("this run was not started by scripts/test.sh")

    done = subprocess.run([str(REPO / "scripts" / "test.sh"), "--collect-only", "-q"], capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 75, done.stderr
    assert f"already running (pid {os.getpid()})" in done.stderr

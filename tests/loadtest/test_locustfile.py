"""The locustfile's HLTNode, built in a child process (importing Locust monkey-patches the
standard library with gevent, which must not happen inside pytest)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from locust.env import Environment
from loadtest.locustfile import READ_BLOCK, HLTNode

node = HLTNode(Environment(user_classes=[HLTNode]))
client = node.client.client.clientpool.get_client(node.host + "/v1/globaltags")
print(node.host, client.block_size, READ_BLOCK)
"""


def test_a_node_reads_its_socket_in_read_blocks() -> None:
    env = {**os.environ, "OUTPOST_LOADTEST_NODES": "http://127.0.0.1:9/,http://127.0.0.1:10/"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    host, block_size, read_block = done.stdout.split()
    assert host == "http://127.0.0.1:9/"
    assert int(block_size) == int(read_block) == 64 * 1024

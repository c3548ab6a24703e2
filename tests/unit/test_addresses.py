"""Several master addresses: how TITAN_HOST / --host / --master name them, and the worker's --master."""

import pytest
import zmq

from titan.net import addresses
from titan.worker.config import parse_master


def test_hosts_take_the_default_port_unless_they_name_their_own():
    assert addresses.masters("h1,h2:9191", 9090) == [("h1", 9090), ("h2", 9191)]
    assert addresses.masters("localhost", 9090) == [("localhost", 9090)]
    assert addresses.endpoints("h1:9090, h2:9090", 9000, 3) == "tcp://h1:9093,tcp://h2:9093"


def test_no_address_at_all_is_refused_naming_the_text():
    with pytest.raises(ValueError, match="no master address in ' , '"):
        addresses.masters(" , ", 9090)


def test_a_socket_given_several_masters_reaches_only_a_connected_one():
    ctx = zmq.Context()
    try:
        socket = ctx.socket(zmq.DEALER)
        addresses.connect_all(socket, "tcp://127.0.0.1:1,tcp://127.0.0.1:2")
        assert socket.getsockopt(zmq.IMMEDIATE) == 1   # nothing queued for a master that is not there
        with pytest.raises(zmq.Again):
            socket.send(b"x", zmq.NOBLOCK)
        socket.close(0)
    finally:
        ctx.term()


def test_the_workers_master_flag_takes_several_masters():
    assert parse_master("a:9090,b:9191") == ("a:9090,b:9191", 9090)
    assert parse_master("a:9090") == ("a", 9090)
    with pytest.raises(SystemExit, match="HOST:PORT"):
        parse_master("a:9090,b")

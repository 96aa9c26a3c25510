"""kafka-python's socket reads, 1 MiB per `recv` (streamdrift/kafka/sockets.py), on real sockets: every byte
sent is read back in order, a read ends when the socket has nothing more, a closed peer ends the connection
with the error kafka-python gives it."""

from __future__ import annotations

import os
import select
import socket
import threading

import kafka.net.manager as manager
from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

from streamdrift.kafka.sockets import (
    READ_BYTES,
    LargeReadSSLTransport,
    LargeReadTCPTransport,
    read_sockets_in_large_chunks,
)

PAYLOAD = os.urandom(3 * READ_BYTES + 12_345)  # several reads' worth, the last one short


def nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    return reader, writer


def read_until(transport: LargeReadTCPTransport, reader: socket.socket, size: int) -> bytes:
    """What the transport reads until `size` bytes arrived, waiting for the socket between reads as
    kafka-python's selector does."""
    received = bytearray()
    while len(received) < size:
        assert select.select([reader], [], [], 10.0)[0], "nothing more arrived"
        data, error = transport._sock_recv()
        assert error is None, error
        received += data
    return bytes(received)


def test_every_byte_sent_is_read_back_in_order() -> None:
    reader, writer = nonblocking_pair()
    sender = threading.Thread(target=writer.sendall, args=(PAYLOAD,))
    sender.start()
    try:
        received = read_until(LargeReadTCPTransport(None, reader), reader, len(PAYLOAD))
    finally:
        sender.join(10.0)
        reader.close()
        writer.close()
    assert received == PAYLOAD


def test_a_read_returns_what_the_socket_holds_and_does_not_wait_for_more() -> None:
    reader, writer = nonblocking_pair()
    try:
        writer.sendall(b"first")
        assert LargeReadTCPTransport(None, reader)._sock_recv() == (b"first", None)
        # Nothing more sent: the next read returns nothing rather than blocking.
        assert LargeReadTCPTransport(None, reader)._sock_recv() == (b"", None)
    finally:
        reader.close()
        writer.close()


def test_a_closed_peer_ends_the_connection_after_its_last_bytes() -> None:
    reader, writer = nonblocking_pair()
    transport = LargeReadTCPTransport(None, reader)
    try:
        writer.sendall(b"last words")
        writer.close()
        # The short read ends the first call with the bytes; the next finds the end of the stream.
        assert transport._sock_recv() == (b"last words", None)
        data, error = transport._sock_recv()
        assert data == b""
        assert error is not None
        assert "socket disconnected" in str(error)
    finally:
        reader.close()


def test_kafka_python_builds_the_large_read_transports_once_installed() -> None:
    before = manager.KafkaTCPTransport, manager.KafkaSSLTransport
    try:
        manager.KafkaTCPTransport, manager.KafkaSSLTransport = KafkaTCPTransport, KafkaSSLTransport
        assert read_sockets_in_large_chunks()
        assert manager.KafkaTCPTransport is LargeReadTCPTransport
        assert manager.KafkaSSLTransport is LargeReadSSLTransport
        assert read_sockets_in_large_chunks()  # a second call changes nothing
        assert manager.KafkaTCPTransport is LargeReadTCPTransport
    finally:
        manager.KafkaTCPTransport, manager.KafkaSSLTransport = before


def test_a_kafka_python_whose_manager_builds_other_transports_is_left_alone() -> None:
    class Other(KafkaTCPTransport):  # type: ignore[misc]
        pass

    before = manager.KafkaTCPTransport, manager.KafkaSSLTransport
    try:
        manager.KafkaTCPTransport, manager.KafkaSSLTransport = Other, KafkaSSLTransport
        assert not read_sockets_in_large_chunks()
        assert manager.KafkaTCPTransport is Other
    finally:
        manager.KafkaTCPTransport, manager.KafkaSSLTransport = before

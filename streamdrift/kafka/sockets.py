"""Reading a broker's socket up to 1 MiB per call, where kafka-python reads 4 KiB.

kafka-python 3 reads its sockets on an I/O thread: `recv(4096)` in a loop until the socket has nothing more.
Each `recv` releases the GIL and has to take it back, and while the processing loop holds the GIL, taking it
back waits until the loop hands it over: up to the interpreter's switch interval. A 1 MiB fetch response
is 256 such waits, so on a busy loop the fetcher falls behind and the loop then sits waiting for input (the
process used half the CPU its wall time allowed). With 1 MiB per `recv`, a fetch response takes a few calls.
On 1M events of 10,000 models read by kafka-python with River behind it, this made a whole-process run
1.77x faster (medians of 5; README, Performance, step 7).

The transports below are kafka-python's own but for the size of a read; `read_sockets_in_large_chunks`
makes kafka-python's connection manager build them instead of its own, for every client in the process.
"""

from __future__ import annotations

import logging
import socket
import ssl

from kafka.errors import KafkaConnectionError
from kafka.net import manager
from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

READ_BYTES = 1 << 20

log = logging.getLogger("kafka.net.transport")  # kafka-python's logger: its lines stay as they were


def _read_all(
    transport: KafkaTCPTransport,
    sock: socket.socket,
    would_block: tuple[type[BaseException], ...],
    *,
    short_read_drains: bool,
) -> tuple[bytes, KafkaConnectionError | None]:
    """Everything the socket holds now, as kafka-python's `_sock_recv` returns it: the bytes, and the error
    that ends the connection (the peer closed it, or the read failed), if any.

    With `short_read_drains`, a read shorter than asked ends the loop: the socket had no more then, and
    the selector (level-triggered) wakes the I/O thread again for what arrives next. That saves the `recv`
    that would only raise `BlockingIOError`, and its wait for the GIL."""
    chunks: list[bytes] = []
    error = None
    while True:
        try:
            data = sock.recv(READ_BYTES)
        except would_block:
            break
        except Exception as exc:
            log.exception("%s: Error receiving network data closing socket", transport)
            error = KafkaConnectionError(exc)
            break
        if not data:
            log.error("%s: socket disconnected", transport)
            error = KafkaConnectionError("socket disconnected")
            break
        chunks.append(data)
        if short_read_drains and len(data) < READ_BYTES:
            break
    return b"".join(chunks), error


class LargeReadTCPTransport(KafkaTCPTransport):  # type: ignore[misc]
    def _sock_recv(self) -> tuple[bytes, KafkaConnectionError | None]:
        return _read_all(self, self._sock, (BlockingIOError, InterruptedError), short_read_drains=True)


class LargeReadSSLTransport(KafkaSSLTransport):  # type: ignore[misc]
    # A TLS socket returns at most one TLS record (16 KiB) per call, and may hold decrypted bytes that the
    # selector does not see: it is read until it would block, like kafka-python's.
    def _sock_recv(self) -> tuple[bytes, KafkaConnectionError | None]:
        would_block = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
        return _read_all(self, self._sock, would_block, short_read_drains=False)


def read_sockets_in_large_chunks() -> bool:
    """Make kafka-python's connection manager build the transports above. False, and nothing changed, when
    its transports are not the ones this module was written against (a kafka-python without `_sock_recv`)."""
    if manager.KafkaTCPTransport is LargeReadTCPTransport:
        return True
    if (
        manager.KafkaTCPTransport is not KafkaTCPTransport
        or manager.KafkaSSLTransport is not KafkaSSLTransport
        or not hasattr(KafkaTCPTransport, "_sock_recv")  # the TLS transport is its subclass
    ):
        return False
    manager.KafkaTCPTransport = LargeReadTCPTransport
    manager.KafkaSSLTransport = LargeReadSSLTransport
    return True

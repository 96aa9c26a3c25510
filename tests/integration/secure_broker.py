"""A private broker with an extra SASL_SSL listener (SCRAM-SHA-256/512), and the PKI for it, made with
openssl in the test's directory: a CA, a broker certificate for `localhost` signed by it, a second CA that
signed nothing the broker presents (for the untrusted-CA case), and a client certificate whose key is
encrypted with a password (a client's `ssl_password`). And a relay that puts latency between a client and
the broker.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import UserScramCredentialUpsertion

from tests.integration.test_kafka_script import ScriptBroker, free_ports

USER = "streamdrift"
PASSWORD = "s3cret-pa55word-never-logged"
BROKER_NAME = "localhost"  # the certificate's only name: 127.0.0.1 is a wrong hostname for it
KEYSTORE_PASSWORD = "keystore-pass"
CLIENT_KEY_PASSWORD = "client-key-pa55phrase-never-logged"


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    keystore: Path
    client_cert: Path
    client_key: Path  # encrypted with CLIENT_KEY_PASSWORD


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=streamdrift test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            cwd=folder,
        )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={BROKER_NAME}",
        "-keyout", "broker.key", "-out", "broker.csr", cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{BROKER_NAME}\n")
    openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "broker.pem", cwd=folder,
    )  # fmt: skip
    openssl(
        "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
        "-name", "broker", "-passout", f"pass:{KEYSTORE_PASSWORD}", "-out", "broker.p12", cwd=folder,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-passout", f"pass:{CLIENT_KEY_PASSWORD}", "-subj", "/CN=streamdrift",
        "-keyout", "client.key", "-out", "client.csr", cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "client.pem", cwd=folder,
    )  # fmt: skip
    assert b"ENCRYPTED PRIVATE KEY" in (folder / "client.key").read_bytes()
    return Pki(
        ca=folder / "ca.pem",
        other_ca=folder / "other-ca.pem",
        keystore=folder / "broker.p12",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )


class SecureBroker(ScriptBroker):
    """kafka.sh's broker plus a SASL_SSL listener on `secure_port`, advertised as localhost."""

    def __init__(self, data_dir: Path, pki: Pki) -> None:
        super().__init__(data_dir)
        (self.secure_port,) = free_ports(1)
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        extra = data_dir.parent / "secure.properties"
        extra.write_text(
            "\n".join(
                [
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},"
                    f"SASL_SSL://127.0.0.1:{self.secure_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"SASL_SSL://{BROKER_NAME}:{self.secure_port}",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                    "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
                    f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
                    f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
                    "ssl.keystore.type=PKCS12",
                    f"ssl.keystore.location={pki.keystore}",
                    f"ssl.keystore.password={KEYSTORE_PASSWORD}",
                    f"ssl.key.password={KEYSTORE_PASSWORD}",
                    "",
                ]
            )
        )
        self.env["KAFKA_EXTRA_CONFIG"] = str(extra)

    @property
    def secure_bootstrap(self) -> str:
        return f"{BROKER_NAME}:{self.secure_port}"

    def add_user(self, user: str, password: str) -> None:
        """SCRAM credentials for both mechanisms, set over the PLAINTEXT listener."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # one per request: the broker's rule
                result = admin.alter_user_scram_credentials(
                    [UserScramCredentialUpsertion(user, mechanism, password)]
                )
                assert result == {user: None}, result
        finally:
            admin.close()


class LatencyRelay:
    """A TCP relay to a local port that holds every chunk `delay_s` before passing it on, each way: a broker
    far away. It stretches a connection's setup (TLS, ApiVersions, SASL) to seconds. When nothing listens
    on the port, a connection is accepted and then reset, as a load balancer in front of a broker does.
    """

    def __init__(self, port: int, delay_s: float) -> None:
        self.target_port, self.delay_s = port, delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.accepting = threading.Thread(target=self._accept, name="relay: accepting", daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(source, sink), name="relay", daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):  # either end gone, or the relay closed
            while data := source.recv(65536):
                time.sleep(self.delay_s)  # the latency itself
                sink.sendall(data)
        time.sleep(self.delay_s)  # the end of the stream arrives as late as its data
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        # shutdown() first: it wakes a thread blocked in accept() or recv() on the socket; close() does not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.accepting.join(timeout=10)
        with self.lock:
            for connection in self.open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()

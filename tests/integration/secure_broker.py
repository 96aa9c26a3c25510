"""A private broker with an extra SASL_SSL listener (SCRAM-SHA-256/512), and the PKI for it, made with
openssl in the test's directory: a CA, a broker certificate for `localhost` signed by it, and a second CA
that signed nothing the broker presents (for the untrusted-CA case).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import UserScramCredentialUpsertion

from tests.integration.test_kafka_script import ScriptBroker, free_ports

USER = "streamdrift"
PASSWORD = "s3cret-pa55word-never-logged"
BROKER_NAME = "localhost"  # the certificate's only name: 127.0.0.1 is a wrong hostname for it
KEYSTORE_PASSWORD = "keystore-pass"


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    keystore: Path


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
    return Pki(ca=folder / "ca.pem", other_ca=folder / "other-ca.pem", keystore=folder / "broker.p12")


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

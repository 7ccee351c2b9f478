"""Email through a real SMTP server (aiosmtpd on 127.0.0.1) with STARTTLS and AUTH.

The certificate is self-signed, made for the test with the openssl command
line (`cryptography` is not installed); without openssl the TLS test is
skipped and plain SMTP + AUTH is still exercised.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import cpu_rows, matches, program

from tests.support.services import require_binary

pytestmark = pytest.mark.timeout(30)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b""))
        self.tls.append(session.ssl is not None)
        return "250 OK"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == b"s3cret-pw"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(tmp: Path) -> tuple[Path, Path] | None:
    if shutil.which("openssl") is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


EMAIL = """
channel mail = email(smtp_host = "127.0.0.1", smtp_port = {port}, sender = "cep@example.org",
                     to = ["ops@example.org", "oncall@example.org"], starttls = {starttls},
                     username = "alerts", password = env("SMTP_PASSWORD"), retries = 1)
rule r "Disk almost full" from metrics where cpu > 1 group by host severity critical notify mail
  message "{{{{ host }}}} is at {{{{ cpu }}}}% <b>not html</b>"
"""


def check_message(raw: bytes) -> None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "[CRITICAL] Disk almost full"
    assert msg["From"] == "cep@example.org"
    assert msg["To"] == "ops@example.org, oncall@example.org"
    assert msg["X-CEP-Idempotency-Key"].startswith("cep-")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.strip() == "web-0 is at 90.0% <b>not html</b>"
    assert "web-0 is at 90.0% &lt;b&gt;not html&lt;/b&gt;" in html  # text escaped into the HTML part
    assert "<th align='left'>host</th><td>web-0</td>" in html


def test_starttls_and_auth(tmp_path, make_notifier):
    pair = make_cert(tmp_path)
    if pair is None:
        require_binary("openssl")  # fails under CI, skips elsewhere
        pytest.skip("openssl could not make a certificate")
    cert, key = pair
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=inbox.authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        port = controller.port
        prog = program(EMAIL.format(port=port, starttls="true"))
        client_tls = ssl.create_default_context(cafile=str(cert))
        n = make_notifier(prog, {"SMTP_PASSWORD": "s3cret-pw"}, ssl_context=client_tls).start()
        n.submit("r", matches(prog, "r", cpu_rows(1)))
        assert n.drain(15)
        assert n.stats()["sent"] == 1
        ((mail_from, rcpts, raw),) = inbox.messages
        assert mail_from == "cep@example.org" and rcpts == ["ops@example.org", "oncall@example.org"]
        assert inbox.logins == ["alerts"] and inbox.tls == [True]
        check_message(raw)
    finally:
        controller.stop()


def test_wrong_password_is_a_permanent_failure_without_the_password_in_the_reason(tmp_path, make_notifier):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox.authenticator, auth_require_tls=False)
    controller.start()
    try:
        port = controller.port
        prog = program(EMAIL.format(port=port, starttls="false"))
        n = make_notifier(prog, {"SMTP_PASSWORD": "wrong-password-xyz"}).start()
        n.submit("r", matches(prog, "r", cpu_rows(1)))
        assert n.drain(15)
        (failure,) = n.failures()
        assert failure["reason"].startswith("SMTP 535") and failure["attempts"] == 1  # 5xx: not retried
        assert "wrong-password-xyz" not in str(failure)
        assert inbox.messages == []
    finally:
        controller.stop()


def test_plain_smtp_with_auth(make_notifier):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox.authenticator, auth_require_tls=False)
    controller.start()
    try:
        port = controller.port
        prog = program(EMAIL.format(port=port, starttls="false"))
        n = make_notifier(prog, {"SMTP_PASSWORD": "s3cret-pw"}, max_in_flight=1).start()  # one at a time: in order
        n.submit("r", matches(prog, "r", cpu_rows(2)))
        assert n.drain(15)
        assert len(inbox.messages) == 2 and inbox.logins == ["alerts", "alerts"] and inbox.tls == [False, False]
        check_message(inbox.messages[0][2])
    finally:
        controller.stop()

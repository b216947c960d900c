"""The e-mail receiver against a real aiosmtpd server on loopback, with STARTTLS and AUTH.

The certificate is self-signed, generated per test run with the ``openssl`` command line tool.
"""

from __future__ import annotations

import email
import shutil
import ssl
import subprocess
from datetime import datetime, timezone

import pytest

from alerting.alert import Alert, Notification
from alerting.config import EmailConfig
from alerting.notifiers.email import EmailNotifier
from tsdb.http import PermanentError, RetryableError

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"mlpulse" and auth_data.password == b"hunter2"
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line tool not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def smtp_server(cert, port):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True)
    controller.start()
    yield inbox, port
    controller.stop()


def notification() -> Notification:
    a = Alert({"alertname": "ModelDrift", "model": "fraud"}, {"summary": "drift score 0.9"}, T0, value=0.9)
    return Notification("mail", "k", {"alertname": "ModelDrift"}, (a,), "http://mlpulse")


def config(port: int, cert, password: str = "hunter2") -> EmailConfig:
    return EmailConfig.model_validate({
        "to": ["ops@example.com"], "from": "mlpulse@example.com", "smarthost": f"127.0.0.1:{port}",
        "username": "mlpulse", "password": {"value": password}, "ca_file": str(cert[0]), "timeout": "10s"})


@pytest.mark.timeout(60)
def test_email_over_starttls_with_auth(smtp_server, cert):
    inbox, port = smtp_server
    EmailNotifier(config(port, cert)).send(notification())
    sender, rcpts, content = inbox.messages[0]
    msg = email.message_from_bytes(content)
    assert sender == "mlpulse@example.com" and rcpts == ["ops@example.com"]
    assert msg["Subject"] == "[FIRING:1] ModelDrift"
    assert "drift score 0.9" in msg.get_payload()


@pytest.mark.timeout(60)
def test_wrong_password_is_permanent(smtp_server, cert):
    _, port = smtp_server
    with pytest.raises(PermanentError, match="authentication"):
        EmailNotifier(config(port, cert, password="wrong")).send(notification())


@pytest.mark.timeout(60)
def test_untrusted_certificate_is_refused(smtp_server, cert, tmp_path):
    _, port = smtp_server
    cfg = config(port, cert).model_copy(update={"ca_file": None})
    with pytest.raises(RetryableError, match="SSL|certificate"):
        EmailNotifier(cfg).send(notification())


@pytest.mark.timeout(30)
def test_unreachable_server_is_retryable(port, cert):
    with pytest.raises(RetryableError):
        EmailNotifier(config(port, cert)).send(notification())

"""E-mail receiver over SMTP: STARTTLS (default), implicit TLS or plain, with optional auth."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

from alerting.alert import Notification
from alerting.config import EmailConfig
from tsdb.http import PermanentError, RetryableError


def render_message(n: Notification, cfg: EmailConfig) -> EmailMessage:
    msg = EmailMessage()
    firing = sum(a.status == "firing" for a in n.alerts)
    name = n.group_labels.get("alertname") or n.alerts[0].name
    msg["Subject"] = f"[{n.status.upper()}:{firing}] {name}"
    msg["From"] = cfg.from_
    msg["To"] = ", ".join(cfg.to)
    lines = [f"{a.status.upper()} {a.name} {dict(sorted(a.labels.items()))}\n"
             + "".join(f"  {k}: {v}\n" for k, v in sorted(a.annotations.items())) for a in n.alerts]
    msg.set_content("\n".join(lines) + (f"\n{n.external_url}\n" if n.external_url else ""))
    return msg


class EmailNotifier:
    name = "email"

    def __init__(self, config: EmailConfig):
        self.config = config

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.config.ca_file) if self.config.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        host, _, port = self.config.smarthost.rpartition(":")
        timeout = self.config.timeout.total_seconds()
        if self.config.tls == "tls":
            return smtplib.SMTP_SSL(host, int(port), timeout=timeout, context=self._context())
        smtp = smtplib.SMTP(host, int(port), timeout=timeout)
        if self.config.tls == "starttls":
            smtp.starttls(context=self._context())
        return smtp

    def send(self, notification: Notification) -> None:
        try:
            with self._connect() as smtp:
                if self.config.username:
                    smtp.login(self.config.username, self.config.password.resolve().get() if self.config.password else "")
                smtp.send_message(render_message(notification, self.config))
        except smtplib.SMTPAuthenticationError as e:
            raise PermanentError(f"SMTP authentication failed: {e.smtp_code}", e.smtp_code, self.config.smarthost) from None
        except smtplib.SMTPResponseException as e:
            cls = PermanentError if 500 <= e.smtp_code < 600 else RetryableError
            raise cls(f"SMTP {e.smtp_code}: {e.smtp_error!r}", e.smtp_code, self.config.smarthost) from None
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as e:
            raise RetryableError(f"{type(e).__name__}: {e}", None, self.config.smarthost) from None

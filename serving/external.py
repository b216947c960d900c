"""Remediation for other serving stacks (KServe, Seldon, MLflow aliases...): run a command or call
a webhook, with the alert's labels as parameters."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict

from alerting.actions import ActionRequest
from alerting.notifiers.http import post
from alerting.notifiers.webhook import sign
from serving.config import ExternalAction
from serving.ops import OpResult


def command_argv(request: ActionRequest, action: ExternalAction) -> list[str]:
    """The argv with ``{model}``, ``{rule}``, ``{fingerprint}`` and ``{<label>}`` filled in
    (unknown names become empty strings; no shell is involved)."""
    params = defaultdict(str, {**request.labels, "model": request.model, "rule": request.rule,
                               "fingerprint": request.fingerprint, "action": request.action})
    return [arg.format_map(params) for arg in action.command]


def webhook_body(request: ActionRequest) -> bytes:
    return json.dumps({
        "action": request.action, "model": request.model, "rule": request.rule,
        "fingerprint": request.fingerprint, "firing_since": request.firing_since.isoformat(),
        "idempotency_key": request.idempotency_key, "labels": request.labels,
    }, sort_keys=True).encode()


def run_external(request: ActionRequest, action: ExternalAction, *, dry_run: bool, allow_private: bool) -> OpResult:
    if action.command is not None:
        argv = command_argv(request, action)
        if dry_run:
            return OpResult(request.model, request.action, None, None, f"would run {argv}", True)
        return _run_command(request, argv, action)
    hook = action.webhook
    if dry_run:
        return OpResult(request.model, request.action, None, None, f"would POST to {hook.url}", True)
    body = webhook_body(request)
    headers = {"Content-Type": "application/json", "Idempotency-Key": request.idempotency_key}
    if hook.hmac_secret is not None:
        headers["X-Mlpulse-Signature"] = sign(hook.hmac_secret.resolve().get(), body)
    post(hook.url, body, headers, timeout=hook.timeout.total_seconds(), allow_private=allow_private)
    return OpResult(request.model, request.action, None, None, f"POSTed {request.action} to {hook.url}")


def _run_command(request: ActionRequest, argv: list[str], action: ExternalAction) -> OpResult:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=action.timeout.total_seconds())
    except subprocess.TimeoutExpired:
        return OpResult(request.model, request.action, None, None, f"{argv[0]} timed out", ok=False)
    ok = proc.returncode == 0
    tail = (proc.stdout if ok else proc.stderr).strip()[-300:]
    return OpResult(request.model, request.action, None, None,
                    f"{argv[0]} exited {proc.returncode}: {tail}", ok=ok)

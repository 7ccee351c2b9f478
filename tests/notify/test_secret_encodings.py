"""Issue 12 item 7: secrets masked in every encoding, and before any truncation.

Before: only the raw string was masked (a key with a quote or backslash leaked JSON-escaped
in bodies, errors, logs and the outbox), and responses were cut to 200 characters before
masking, so a secret crossing the cut leaked its prefix.
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from conftest import cpu_rows, matches, program

from runtime.notify.secrets import MASK, Redactor, encodings

from receiver import Answer

pytestmark = pytest.mark.timeout(30)

SECRETS = [
    'tok"en\\with/quotes',
    "p@ss word+plus&amp=1",
    "ключ-секрет-123",
    "line\nbreak\ttab-secret",
    "plain-token-abcdef",
]


def forms(secret: str) -> dict[str, str]:
    """Texts in which `secret` appears, as each kind of output would carry it."""
    b = secret.encode()
    out = {
        "raw": f"error: {secret} refused",
        "json": json.dumps({"key": secret}),
        "json_ascii": json.dumps({"key": secret}, ensure_ascii=True),
        "json_unicode": json.dumps({"key": secret}, ensure_ascii=False),
        "repr": repr({"key": secret}),
        "url": f"https://h.example/p?key={quote(secret, safe='')}&x=1",
        "url_path": f"https://h.example/{quote(secret)}/x",
        "url_plus": "key=" + quote_plus(secret),
        "header": f"Authorization: Bearer {secret}",
    }
    for user in ("", "u", "us", "usr", "user1"):  # every alignment inside a longer base64 text
        out[f"basic_{len(user)}"] = "Authorization: Basic " + base64.b64encode(f"{user}:".encode() + b).decode()
        out[f"b64url_{len(user)}"] = base64.urlsafe_b64encode(user.encode() + b + b"tail").decode()
    return out


@pytest.mark.parametrize("secret", SECRETS)
def test_every_encoding_is_masked(secret: str) -> None:
    r = Redactor([secret])
    for name, text in forms(secret).items():
        shown = r.redact(text)
        assert MASK in shown, name
        for enc in encodings(secret):
            if len(enc) >= 4:
                assert enc not in shown, (name, enc, shown)


def test_short_fragments_and_ordinary_words_are_left_alone() -> None:
    r = Redactor(["abc", "a-real-secret"])
    assert r.redact("abc and a-real-secret") == "abc and ***"


@pytest.mark.parametrize("start", [150, 190, 195, 199, 200, 205])
def test_masked_before_cut(start: int) -> None:
    secret = "S3CR3T-" + "x" * 40
    r = Redactor([secret])
    text = "." * start + json.dumps(secret) + "." * 500
    cut = r.shorten(text, 200)
    assert len(cut) == min(200, len(r.redact(text)))
    for k in range(4, len(secret)):  # no prefix of it either
        assert secret[:k] not in cut or secret[:k] == "x" * k
    assert "S3CR" not in cut


def test_many_secrets_in_a_row_still_cut_safely() -> None:
    secrets = [f"secret-number-{i:03d}-" + "q" * 30 for i in range(60)]
    r = Redactor(secrets)
    cut = r.shorten("".join(secrets), 200)
    assert set(cut) == {"*"} and len(cut) == 180  # 60 masks, nothing of any secret


def test_json_escaped_secret_never_reaches_outbox_logs_or_failures(receiver, make_notifier, tmp_path, caplog) -> None:
    secret = 'Bearer tok"en\\back-' + "z" * 190  # crosses the 200-character cut of the echoed body
    echoed = json.dumps({"error": "unauthorized", "pad": "." * 120, "got": {"Authorization": secret}}).encode()
    receiver.script("/hook", Answer(401, body=echoed))
    prog = program("""
channel hook = webhook(url = env("HOOK_URL"), headers = {"Authorization": env("HOOK_AUTH")})
rule r "R" from metrics where cpu > 1 notify hook
""")
    outbox = tmp_path / "enc.sqlite"
    caplog.set_level(logging.DEBUG)
    n = make_notifier(prog, {"HOOK_URL": receiver.url + "/hook", "HOOK_AUTH": secret}, outbox=outbox).start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    (failure,) = n.failures()
    assert failure["reason"].startswith("HTTP 401:") and MASK in failure["reason"]
    n.stop()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("enc.sqlite*")).decode("latin-1")
    everything = blob + caplog.text + failure["reason"] + str(n.stats())
    for enc in encodings(secret):
        assert enc[:12] not in everything, enc[:12]

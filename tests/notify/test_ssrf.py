"""SSRF: every way of spelling an internal address is refused, at connect time, and nothing reaches it.

Each corpus URL points at a live canary server on 127.0.0.1; if the guard let one
through, the canary would see the request. Resolution is checked where the
connection is made, so a name that resolves (or re-resolves) to a forbidden
address is refused too.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import LOCAL, cpu_rows, matches, program

from runtime.notify import ChannelConfigError, DestinationPolicy, DestinationRefused, notify_test
from runtime.notify.ssrf import forbidden_reason, guarded_client, parse_ip

pytestmark = pytest.mark.timeout(30)

CORPUS = [
    "http://127.0.0.1:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0x7f.1:{p}/",
    "http://0x7f.0.0.1:{p}/",
    "http://017700000001:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0177.1:{p}/",
    "http://127.0.0.1.:{p}/",
    "http://0:{p}/",
    "http://0.0.0.0:{p}/",
    "http://localhost:{p}/",
    "http://LOCALHOST:{p}/",
    "http://localhost.:{p}/",
    "http://[::1]:{p}/",
    "http://[::]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[64:ff9b::7f00:1]:{p}/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::1]/",
    "http://[2002:7f00:1::]:{p}/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[::127.0.0.1]:{p}/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://2852039166/",
    "http://169.254.169.254.:80/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.0.8/",
    "http://user:pw@127.0.0.1:{p}/",
    "http://127.0.0.1:{p}@localhost:{p}/",
    "https://127.0.0.1:{p}/",
    "ftp://127.0.0.1:{p}/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{p}/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://0x7f.0x0.0x0.0x1:{p}/",
    # issue 12: the corpus kept as a test, grown past 100 spellings
    "http://127.0.0.2:{p}/",
    "http://127.255.255.254:{p}/",
    "http://127.000.000.001:{p}/",
    "http://0177.0.0.01:{p}/",
    "http://2130706433.:{p}/",
    "http://0x7f000001.:{p}/",
    "http://0x7F.1:{p}/",
    "http://0X7f.0.0.1:{p}/",
    "http://127.0.0.1.:{p}/x?y=1#z",
    "http://0.0.0.0.:{p}/",
    "http://0.1.2.3/",
    "http://00000:{p}/",
    "http://[0::1]:{p}/",
    "http://[::0:1]:{p}/",
    "http://[0000::0001]:{p}/",
    "http://[::ffff:0:7f00:1]:{p}/",
    "http://[::ffff:127.0.0.2]:{p}/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:192.168.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b::c0a8:101]/",
    "http://[64:ff9b::169.254.169.254]/",
    "http://[2002:c0a8:101::1]/",
    "http://[2002:0a00:0001::]/",
    "http://[fe80::1%25lo]/",
    "http://[fec0::1]/",
    "http://[fd00:ec2::254]/",
    "http://[100::1]/",
    "http://[2001:db8::1]/",
    "http://[::]/",
    "http://[ff00::]/",
    "http://169.254.169.254:80/latest/",
    "http://169.254.43518/",
    "http://0251.0376.0251.0376/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0xA9FEA9FE/",
    "http://169.254.0.1/",
    "http://10.255.255.255/",
    "http://10.0.0.0/",
    "http://172.31.255.255/",
    "http://172.20.1.1/",
    "http://192.168.255.255/",
    "http://100.127.255.254/",
    "http://198.18.0.1/",
    "http://198.19.255.254/",
    "http://192.0.2.1/",
    "http://198.51.100.1/",
    "http://203.0.113.1/",
    "http://239.255.255.250/",
    "http://0xe0000001/",
    "http://3758096385/",
    "http://4294967295/",
    "http://LocalHost.:{p}/",
    "dict://127.0.0.1:{p}/",
    "ldap://127.0.0.1:{p}/",
    "ws://127.0.0.1:{p}/",
    "data:text/plain,hello",
    "javascript:alert(1)",
    "http://10.0.0.1:{p}@127.1:{p}/",
]


# Spellings whose host is literally the allowlisted 127.0.0.1 (so the test allowlist admits them).
LOCAL_HOST_LITERAL = {
    "http://127.0.0.1:{p}/",
    "http://127.0.0.1.:{p}/",
    "http://user:pw@127.0.0.1:{p}/",
    "http://127.0.0.1.:{p}/x?y=1#z",
    "https://127.0.0.1:{p}/",
}


def refused_at_connect(url: str, policy: DestinationPolicy) -> bool:
    async def go() -> bool:
        async with guarded_client(policy) as client:
            try:
                await client.post(url, content=b"{}", timeout=2)
            except DestinationRefused:  # http11.InvalidURL (a URL that cannot be sent) is one too
                return True
            return False

    return asyncio.run(go())


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 100 and len(set(CORPUS)) == len(CORPUS)


@pytest.mark.parametrize("template", CORPUS)
def test_internal_destinations_are_refused(template, receiver):
    url = template.format(p=receiver.port)
    assert refused_at_connect(url, DestinationPolicy()), url
    if template not in LOCAL_HOST_LITERAL:
        # with the test allowlist (exactly the host 127.0.0.1), other spellings are still refused
        assert refused_at_connect(url, LOCAL), url
    assert receiver.received() == []


def test_allowlisted_host_is_reachable(receiver):
    async def go() -> int:
        async with guarded_client(LOCAL) as client:
            return (await client.post(receiver.url + "/ok", content=b"{}")).status_code

    assert asyncio.run(go()) == 200
    assert len(receiver.received("/ok")) == 1


def test_allow_networks_matches_resolved_addresses(receiver):
    policy = DestinationPolicy.allowing(networks=["127.0.0.0/8"])

    async def go() -> int:
        async with guarded_client(policy) as client:
            return (await client.post(f"http://localhost:{receiver.port}/net", content=b"{}")).status_code

    assert asyncio.run(go()) == 200


def test_dns_rebinding_is_checked_on_every_connection(receiver):
    """A name that resolved to an allowed address once and to loopback later is refused later."""
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    policy = DestinationPolicy.allowing(networks=["127.0.0.1/32"])

    async def go() -> tuple[int, bool]:
        async with guarded_client(policy, resolver=resolver) as client:
            first = await client.post(f"http://rebind.test:{receiver.port}/a", content=b"{}", headers={"Connection": "close"})
            try:
                await client.post(f"http://rebind.test:{receiver.port}/b", content=b"{}")
            except DestinationRefused:
                return first.status_code, True
            return first.status_code, False

    assert asyncio.run(go()) == (200, True)
    assert [r.path for r in receiver.received()] == ["/a"]


def test_a_name_with_one_internal_address_is_refused_outright():
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]

    async def go() -> bool:
        async with guarded_client(DestinationPolicy(), resolver=resolver) as client:
            try:
                await client.post("http://mixed.test/", content=b"{}")
            except DestinationRefused as exc:
                return "private" in str(exc)
            return False

    assert asyncio.run(go())


def test_embedded_ipv4_forms_are_judged_by_what_they_embed():
    assert forbidden_reason(parse_ip("::ffff:127.0.0.1")) == "IPv4-mapped loopback address"
    assert forbidden_reason(parse_ip("64:ff9b::7f00:1")) == "NAT64 loopback address"
    assert forbidden_reason(parse_ip("2002:a9fe:a9fe::")) == "6to4 link-local address"
    assert forbidden_reason(parse_ip("::ffff:8.8.8.8")) is None
    assert forbidden_reason(parse_ip("64:ff9b::808:808")) is None
    assert forbidden_reason(parse_ip("8.8.8.8")) is None
    assert str(parse_ip("0x7f.1")) == "127.0.0.1" and str(parse_ip("017700000001")) == "127.0.0.1"


def test_literal_internal_url_is_a_config_error_at_start(tmp_path):
    prog = program("""
channel hook = webhook(url = "http://169.254.169.254/latest")
rule r from metrics where cpu > 1 notify hook
""")
    from runtime.notify import Notifier

    with pytest.raises(ChannelConfigError, match="channel 'hook', option 'url'"):
        Notifier(prog, outbox=tmp_path / "o.sqlite")


async def to_loopback(host: str, port: int) -> list[str]:
    """A DNS stand-in: every name resolves to 127.0.0.1 (as an attacker's domain would)."""
    return ["127.0.0.1"]


def test_notifier_refuses_a_name_resolving_to_loopback_without_retrying(receiver, make_notifier):
    prog = program("""
channel hook = webhook(url = env("HOOK_URL"))
rule r from metrics where cpu > 1 notify hook
""")
    n = make_notifier(prog, {"HOOK_URL": f"http://hooks.example.test:{receiver.port}/x"}, resolver=to_loopback)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert receiver.received() == []
    (failure,) = n.failures()
    assert failure["attempts"] == 1 and "refused" in failure["reason"] and "loopback" in failure["reason"]


def test_notify_test_respects_the_policy(receiver):
    prog = program("""
channel hook = webhook(url = env("HOOK_URL"))
rule r from metrics where cpu > 1 notify hook
""")
    with pytest.raises(ChannelConfigError, match="IPv4-mapped loopback"):
        notify_test(prog, "r", "hook", env={"HOOK_URL": f"http://[::ffff:127.0.0.1]:{receiver.port}/"})
    with pytest.raises(ChannelConfigError, match="loopback"):
        notify_test(prog, "r", "hook", env={"HOOK_URL": f"http://localhost:{receiver.port}/"})
    out = notify_test(prog, "r", "hook", env={"HOOK_URL": f"http://hooks.example.test:{receiver.port}/"}, resolver=to_loopback)
    assert out["ok"] is False and "refused" in out["error"] and out["retryable"] is False
    assert receiver.received() == []


def test_allow_entries_split_hosts_and_networks() -> None:
    import ipaddress

    from runtime.notify import DestinationPolicy

    p = DestinationPolicy.from_entries(["127.0.0.1", "10.0.0.0/8", "localhost"])
    assert p.host_allowed("127.0.0.1") and p.host_allowed("localhost")
    assert not p.host_allowed("10.1.2.3")
    assert p.ip_allowed(ipaddress.ip_address("10.1.2.3"))
    assert not p.ip_allowed(ipaddress.ip_address("192.168.0.1"))

"""Zeroconf: a real ``stylesynth serve`` advertises ``_oscjson._tcp`` and ``_osc._udp``; a real zeroconf browser in
this process finds them over multicast DNS on the loopback interface (the server binds 127.0.0.1, so that is where
it announces; nothing is sent on other interfaces).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request

import pytest
from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from conftest import launch_server
from stylesynth.discovery import OSC_TYPE, OSCQUERY_TYPE, Advertiser, advertised_addresses

pytestmark = pytest.mark.timeout(120)


class Found(ServiceListener):
    """Services seen by a browser, by name, with their resolved port and addresses."""

    def __init__(self):
        self.services: dict[str, tuple[int, list[str]]] = {}
        self.removed: set[str] = set()
        self.changed = threading.Event()

    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is not None:
            self.services[name] = (info.port, info.parsed_addresses())
            self.changed.set()

    def update_service(self, zc, type_, name):
        self.add_service(zc, type_, name)

    def remove_service(self, zc, type_, name):
        self.removed.add(name)
        self.changed.set()

    def wait(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.wait(min(remaining, 0.2))
            self.changed.clear()
        return True


@pytest.fixture
def browser():
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found = {OSCQUERY_TYPE: Found(), OSC_TYPE: Found()}
    browsers = [ServiceBrowser(zc, type_, listener) for type_, listener in found.items()]
    yield found
    for b in browsers:
        b.cancel()
    zc.close()


def _with_port(found: Found, port: int) -> list[str]:
    return [name for name, (p, _) in found.services.items() if p == port]


def test_serve_is_found_by_a_zeroconf_browser_and_says_goodbye(tmp_path, browser):
    server = launch_server(tmp_path, "--no-audio", zeroconf=True)
    try:
        oscquery, osc = browser[OSCQUERY_TYPE], browser[OSC_TYPE]
        assert oscquery.wait(lambda: _with_port(oscquery, server.oscquery_port)), (oscquery.services, server.log)
        assert osc.wait(lambda: _with_port(osc, server.port)), (osc.services, server.log)
        name = _with_port(oscquery, server.oscquery_port)[0]
        assert name.startswith("stylesynth") and oscquery.services[name][1] == ["127.0.0.1"]
        # What was found is the real thing: its HOST_INFO names the same OSC port.
        info = json.load(urllib.request.urlopen(f"http://127.0.0.1:{server.oscquery_port}/?HOST_INFO", timeout=5))
        assert info["OSC_PORT"] == server.port
        deadline = time.monotonic() + 10  # announcing goes on after probing: the log line comes last
        while "zeroconf: advertised" not in server.log and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "zeroconf: advertised" in server.log
    finally:
        assert server.stop() == 0
    assert oscquery.wait(lambda: name in oscquery.removed, timeout=10), "no goodbye when the server stopped"
    assert "Traceback" not in server.log


def test_no_zeroconf_advertises_nothing(tmp_path, browser):
    server = launch_server(tmp_path, "--no-audio", "--no-zeroconf")
    try:
        oscquery = browser[OSCQUERY_TYPE]
        assert not oscquery.wait(lambda: _with_port(oscquery, server.oscquery_port), timeout=4)
        assert "zeroconf:" not in server.log
    finally:
        server.stop()


def test_where_it_is_announced_follows_the_bind_address():
    assert advertised_addresses("127.0.0.1") == (["127.0.0.1"], ["127.0.0.1"])
    assert advertised_addresses("192.0.2.7") == (["192.0.2.7"], ["192.0.2.7"])
    for bad in ("::1", "my-host"):
        with pytest.raises(ValueError):
            advertised_addresses(bad)


def test_a_failure_is_one_warning_and_never_raises(caplog):
    advertiser = Advertiser("::1", 9001, 9000)
    with caplog.at_level(logging.WARNING, logger="stylesynth.discovery"):
        advertiser.start()
        assert advertiser.wait(10)
        advertiser.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not advertising" in warnings[0] and "IPv4" in warnings[0], warnings
    assert advertiser.failure and not advertiser.services


def test_a_taken_name_is_changed_not_refused(browser):
    first, second = (Advertiser("127.0.0.1", port, None, name="stylesynth-twin") for port in (free(), free()))
    try:
        for a in (first, second):
            a.start()
            assert a.wait(15) and a.failure is None, a.failure
        names = {a.services[0].name for a in (first, second)}
        assert len(names) == 2, names
        oscquery = browser[OSCQUERY_TYPE]
        assert oscquery.wait(lambda: names <= set(oscquery.services)), oscquery.services
    finally:
        first.stop()
        second.stop()


def free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

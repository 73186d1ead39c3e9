"""Zeroconf (mDNS/DNS-SD) advertising: ``_oscjson._tcp`` for the OSCQuery port and ``_osc._udp`` for the OSC port.

OSCQuery browsers (ossia score, Chataigne, TouchOSC's OSCQuery support) and OSC clients that browse ``_osc._udp``
find the server without typing a port. Advertising follows the bind address: a server bound to 127.0.0.1 (the
default) announces itself on the loopback interface only, with the address 127.0.0.1, so nothing leaves the
machine; ``--host 0.0.0.0`` announces on every interface with every IPv4 address; a specific address announces on
that interface. Registration runs on a thread of its own (mDNS probing takes ~1.5 s) and any failure (no multicast,
port 5353 refused, no ``zeroconf`` package) is logged once and never stops the server.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading

log = logging.getLogger(__name__)

OSCQUERY_TYPE = "_oscjson._tcp.local."
OSC_TYPE = "_osc._udp.local."


def advertised_addresses(host: str) -> tuple[list[str], list[str] | None]:
    """``(addresses to announce, interfaces to announce on)`` for a bind address; ``None`` interfaces = all.

    Raises ``ValueError`` for a host that is not an IPv4 address (IPv6 and names are not advertised)."""
    if host in ("localhost", "127.0.0.1"):
        return ["127.0.0.1"], ["127.0.0.1"]
    if host in ("", "0.0.0.0"):
        from zeroconf import get_all_addresses

        found = [a for a in get_all_addresses() if not ipaddress.ip_address(a).is_loopback]
        return found or ["127.0.0.1"], None
    address = ipaddress.ip_address(host)  # ValueError for a name
    if address.version != 4:
        raise ValueError(f"{host} is not an IPv4 address (only IPv4 is advertised)")
    return [host], [host]


class Advertiser:
    """Announces the server while it runs.

    Parameters
    ----------
    host : str
        The address the server is bound to (decides where and what is announced).
    oscquery_port, osc_port : int or None
        Ports to announce; ``None`` or 0 leaves that service out.
    name : str
        Instance name; zeroconf appends `` (2)`` and so on when another server on the network has it.
    """

    def __init__(self, host: str, oscquery_port: int | None, osc_port: int | None, name: str = "stylesynth"):
        self.host, self.oscquery_port, self.osc_port, self.name = host, oscquery_port, osc_port, name
        self.zeroconf = None
        self.services: list = []
        self.failure: str | None = None
        self._registering = None  # concurrent.futures.Future of the registration, while it runs
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._register, name="zeroconf", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until registration has finished (or failed); returns whether it finished in time."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _register(self) -> None:
        try:
            from zeroconf import IPVersion, ServiceInfo, Zeroconf

            addresses, interfaces = advertised_addresses(self.host)
            self.zeroconf = Zeroconf(interfaces=interfaces if interfaces is not None else _all_interfaces(),
                                     ip_version=IPVersion.V4Only)
            server = f"{socket.gethostname().split('.')[0] or 'stylesynth'}.local."
            packed = [socket.inet_aton(a) for a in addresses]
            infos = [ServiceInfo(type_, f"{self.name}.{type_}", addresses=packed, port=port, server=server,
                                 properties={"txtvers": "1"})
                     for type_, port in ((OSCQUERY_TYPE, self.oscquery_port), (OSC_TYPE, self.osc_port)) if port]
            # Both at once on zeroconf's own loop: probing takes ~1.7 s per service, one after the other twice that.
            self._registering = asyncio.run_coroutine_threadsafe(_register_all(self.zeroconf, infos),
                                                                 self.zeroconf.loop)
            if self._stopped.is_set():
                self._registering.cancel()
            self._registering.result(10)
            self.services = infos
            log.info("zeroconf: advertised %s on %s", ", ".join(f"{i.name} port {i.port}" for i in self.services),
                     ", ".join(addresses))
        except Exception as exc:  # one line, never fatal: discovery is a convenience
            if self._stopped.is_set():  # stopped while probing: not a failure worth a warning
                log.debug("zeroconf: stopped before registration finished (%s)", exc)
                self._close()
                return
            self.failure = f"{type(exc).__name__}: {exc}"
            log.warning("zeroconf: not advertising (%s); clients can still connect by address and port "
                        "(--no-zeroconf silences this)", self.failure)
            self._close()

    def stop(self) -> None:
        self._stopped.set()
        registering = self._registering
        if registering is not None:
            registering.cancel()  # a server stopped during probing does not wait for it to end
        self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        zc, self.zeroconf = self.zeroconf, None
        if zc is None:
            return
        try:
            zc.unregister_all_services()  # goodbye packets: browsers drop us at once instead of after the TTL
            zc.close()
        except Exception as exc:
            log.debug("zeroconf close: %s", exc)


async def _register_all(zeroconf, infos) -> None:
    """Register every service concurrently (``allow_name_change``: a taken name gets `` (2)``, not an error)."""
    registrations = [await zeroconf.async_register_service(info, allow_name_change=True) for info in infos]
    await asyncio.gather(*registrations)


def _all_interfaces():
    from zeroconf import InterfaceChoice

    return InterfaceChoice.All

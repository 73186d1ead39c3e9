"""OSCQuery: the control space as a JSON tree over HTTP, a WebSocket for live values, and the web control page.

One TCP port, one server (``websockets``' asyncio server on a thread of its own): plain ``GET`` requests are answered
over HTTP, requests that ask to upgrade become WebSockets.

HTTP
    The tree follows the OSCQuery proposal (Vidvox): each node has ``FULL_PATH`` and either ``CONTENTS`` (a
    container) or ``TYPE``, ``RANGE``, ``ACCESS``, ``VALUE``, ``DESCRIPTION``, ``UNIT``, ``TAGS`` (a method). It is
    generated from :mod:`stylesynth.params` on every request, with the engine's current values and the loaded
    model's prototype and start-point names as ``RANGE`` ``VALS``; ``TAGS`` holds the parameter's group (the page
    lays its controls out by it). ``GET /?HOST_INFO`` tells the OSC port, transport and the WebSocket port;
    ``GET /path?VALUE`` (or ``?TYPE``, ...) returns one attribute. Besides the tree, whose only top-level name is
    ``stylesynth``:

    * ``/ui/`` -- the web control page (files in ``stylesynth/web``). A browser asking for ``/`` (``Accept:
      text/html``) is redirected there; every other client gets the JSON root at ``/`` as OSCQuery says.
    * ``/clip/latest.wav`` and ``/clip/latest.png`` -- the newest clip and a picture of its spectrogram
      (:func:`stylesynth.plots.spectrogram_png`), made once per clip.

WebSocket (the proposal's ``LISTEN`` extension)
    Text frames ``{"COMMAND": "LISTEN", "DATA": "/stylesynth/brightness"}`` and ``IGNORE`` start and stop pushes of
    a path's value changes, sent as binary OSC messages. Listenable: every node with a ``VALUE`` (the parameters
    and ``/stylesynth/audio/seq``, the newest clip's number), and ``/error`` for failures the engine reports later
    (a model that did not load). Pushes come from the engine's listener events, the same source ``/notify 1``
    subscribers are fed from. Binary frames from the client are OSC packets: they are relayed to the OSC server's
    UDP port from a socket of the connection's own, so they meet exactly the checks, rate limit and dispatch of
    any UDP packet, and whatever the server answers (``/error``, ``/done``, ``/q`` replies) comes back as binary
    frames.

A slow or flooding client costs only itself: pending value pushes are coalesced per path (latest wins) and other
messages wait in a bounded queue (oldest dropped), so nothing the engine does ever waits on a socket; junk frames
are answered with ``/error`` and the connection stays open. A WebSocket from a web page of another origin is
refused (a site the performer visits must not be able to drive the synth through the browser).
"""
from __future__ import annotations

import asyncio
import collections
import http
import io
import json
import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pythonosc.osc_message_builder import OscMessageBuilder

from stylesynth import params as P
from stylesynth.osc_server import RATE, TokenBucket  # one rate limit for UDP senders and WebSocket clients

log = logging.getLogger(__name__)
#: websockets' own logger: it logs every HTTP request at INFO, which is noise here (quietened unless debugging).
ws_log = logging.getLogger(__name__ + ".websockets")

ACCESS_NONE, ACCESS_READ, ACCESS_WRITE, ACCESS_READ_WRITE = 0, 1, 2, 3
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "RANGE", "ACCESS", "VALUE", "DESCRIPTION", "UNIT", "TAGS")
SEQ_ADDRESS = f"{P.PREFIX}/audio/seq"
ERROR_ADDRESS = "/error"
WEB_DIR = Path(__file__).with_name("web")
UI_PREFIX = "/ui/"
CLIP_PREFIX = "/clip/"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".wav": "audio/wav",
                 ".json": "application/json", ".svg": "image/svg+xml"}

MAX_CLIENTS = 32          # WebSocket connections at once (each has a relay socket and a sender task)
MAX_FRAME = 65507         # bytes: the largest UDP payload, so every frame can be relayed whole
MAX_TEXT = 4096           # bytes: a LISTEN command is < 200
MAX_QUEUED = 256          # replies and errors waiting for a slow client; the oldest go first


def _oscquery_type(param: P.Param) -> str:
    return "T" if param.type == P.BOOL else param.type


def _value(param: P.Param, value):
    return bool(value) if param.type == P.BOOL else value


def build_tree(state=None, synth=None, seq: int | None = None) -> dict:
    """The whole OSCQuery namespace as a dict (``state``: a ControlState for VALUE; ``synth``: the loaded
    renderer, for the names a string parameter accepts; ``seq``: the newest clip's number)."""
    root = {"FULL_PATH": "/", "DESCRIPTION": "stylesynth: neural audio-texture synthesis", "CONTENTS": {}}

    def container(path: str) -> dict:
        node = root
        parts = [p for p in path.split("/") if p]
        for i, part in enumerate(parts):
            node = node["CONTENTS"].setdefault(part, {"FULL_PATH": "/" + "/".join(parts[:i + 1]), "CONTENTS": {}})
        return node

    for param in P.PARAMS.values():
        parent_path, _, leaf = param.osc_address.rpartition("/")
        node = {"FULL_PATH": param.osc_address, "TYPE": _oscquery_type(param), "ACCESS": ACCESS_READ_WRITE,
                "DESCRIPTION": param.description, "TAGS": [param.group]}
        if param.is_number:
            node["RANGE"] = [{"MIN": param.minimum, "MAX": param.maximum}]
        elif param.name == "prototype" and synth is not None:
            node["RANGE"] = [{"VALS": ["none", *synth.prototypes]}]
        elif param.name == "start" and synth is not None:
            node["RANGE"] = [{"VALS": ["", *synth.start_points]}]
        if param.unit:
            node["UNIT"] = [param.unit]
        if state is not None:
            node["VALUE"] = [_value(param, state.get(param.name))]
        container(parent_path)["CONTENTS"][leaf] = node
    commands = container(P.PREFIX)["CONTENTS"]
    commands["trigger"] = {"FULL_PATH": f"{P.PREFIX}/trigger", "TYPE": "f", "ACCESS": ACCESS_WRITE,
                           "RANGE": [{"MIN": 0.0, "MAX": 1.0}], "TAGS": ["command"],
                           "DESCRIPTION": P.COMMANDS[f"{P.PREFIX}/trigger"].description}
    commands["panic"] = {"FULL_PATH": f"{P.PREFIX}/panic", "ACCESS": ACCESS_NONE, "TAGS": ["command"],
                         "DESCRIPTION": P.COMMANDS[f"{P.PREFIX}/panic"].description}
    seq_parent, _, seq_leaf = SEQ_ADDRESS.rpartition("/")
    seq_node = {"FULL_PATH": SEQ_ADDRESS, "TYPE": "i", "ACCESS": ACCESS_READ, "TAGS": ["audio"],
                "DESCRIPTION": P.OUTGOING[SEQ_ADDRESS].split(" -- ", 1)[1]}
    if seq is not None:
        seq_node["VALUE"] = [seq]
    container(seq_parent)["CONTENTS"][seq_leaf] = seq_node
    return root


def find_node(tree: dict, path: str) -> dict | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def listenable_paths() -> frozenset[str]:
    """Paths a WebSocket client may LISTEN to: every node that has a value, and ``/error``."""
    return frozenset({*P.BY_ADDRESS, SEQ_ADDRESS, ERROR_ADDRESS})


def osc_packet(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class _Client:
    """One WebSocket connection: what it listens to and what waits to be sent to it (touched on the loop only)."""

    def __init__(self, ws):
        self.ws = ws
        self.listening: set[str] = set()
        self.values: dict[str, bytes] = {}               # newest push per path: a storm costs one frame per path
        self.queued: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.dropped = 0
        self.relay: asyncio.DatagramTransport | None = None
        self.subscribed = False                          # sent /notify: unsubscribe its relay socket when it goes

    def push_value(self, address: str, packet: bytes) -> None:
        self.values[address] = packet
        self.wake.set()

    def push(self, packet: bytes) -> None:
        if len(self.queued) >= MAX_QUEUED:
            self.queued.popleft()
            self.dropped += 1
        self.queued.append(packet)
        self.wake.set()

    async def send_forever(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queued or self.values:
                    if self.queued:
                        packet = self.queued.popleft()
                    else:
                        packet = self.values.pop(next(iter(self.values)))
                    await self.ws.send(packet)   # waits only on this client's socket
        except ConnectionClosed:
            pass  # the receiving side sees the close too and cleans up


class _Relay(asyncio.DatagramProtocol):
    """The connection's UDP socket to the OSC server: replies it gets go back over the WebSocket."""

    def __init__(self, client: _Client):
        self.client = client

    def datagram_received(self, data: bytes, addr) -> None:
        self.client.push(data)

    def error_received(self, exc) -> None:  # e.g. the OSC server went away during shutdown
        log.debug("relay: %s", exc)


class OscQueryServer:
    """Serves the OSCQuery tree, the WebSocket and the web page on one port, on a thread of its own.

    Parameters
    ----------
    engine : stylesynth.engine.Engine or None
        Source of current values, model names, clips and value-change events.
    host, port : str, int
        Where to listen (port 0 picks a free one; :attr:`port` tells which). Bound in the constructor, so a busy
        port raises ``OSError`` here.
    osc_port : int
        The OSC (UDP) port: reported in ``HOST_INFO`` and where WebSocket binary frames are relayed.
    osc_host : str or None
        Address of the OSC server for the relay (default: ``host``; a wildcard bind is reached on 127.0.0.1).
    """

    def __init__(self, engine, host: str = "127.0.0.1", port: int = 9001, osc_port: int = 9000,
                 osc_host: str | None = None):
        self.engine = engine
        self.osc_port = osc_port
        osc_host = osc_host or host
        self.osc_target = ("127.0.0.1" if osc_host in ("0.0.0.0", "", "localhost") else osc_host, osc_port)
        self.sock = socket.create_server((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self._paths = listenable_paths()
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oscquery", daemon=True)
        self._clip_lock = threading.Lock()
        self._clip_files: dict[str, tuple[int, bytes]] = {}  # "wav"/"png" -> (seq, bytes): made once per clip
        if engine is not None:
            engine.add_listener(self._on_engine_event)

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            ws_log.setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the OSCQuery server did not start within 10 s")

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
            self._ready.set()
            loop.run_forever()
        finally:
            self._ready.set()
            loop.close()

    async def _open(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._serve_client, sock=self.sock, process_request=self._http,
                                   max_size=MAX_FRAME, max_queue=64, compression=None, logger=ws_log,
                                   server_header="stylesynth")

    async def _shutdown(self) -> None:
        self._server.close()  # closes every WebSocket with 1001 (going away)
        await self._server.wait_closed()

    # -- HTTP --------------------------------------------------------------------------------------------------

    def host_info(self) -> dict:
        return {"NAME": "stylesynth", "OSC_IP": self.host, "OSC_PORT": self.osc_port, "OSC_TRANSPORT": "UDP",
                "WS_IP": self.host, "WS_PORT": self.port,
                "EXTENSIONS": {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "UNIT": True,
                               "TYPE": True, "TAGS": True, "CRITICAL": False, "CLIPMODE": False,
                               "LISTEN": True, "PATH_CHANGED": False}}

    def tree(self) -> dict:
        engine = self.engine
        if engine is None:
            return build_tree()
        last = engine.last_clip
        return build_tree(engine.state, engine.synth, last["seq"] if last else 0)

    async def _http(self, connection, request):
        """websockets' ``process_request``: ``None`` lets a WebSocket handshake go on; a response answers a plain
        GET."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
                return _response(403, f"WebSocket from origin {origin} refused: only this server's own page "
                                      "(or a client sending no Origin) may connect\n")
            return None
        url = urlsplit(request.path)
        path = unquote(url.path)
        if path.startswith(CLIP_PREFIX):
            return await asyncio.get_running_loop().run_in_executor(None, self._clip, path[len(CLIP_PREFIX):])
        if path == "/ui" or (path == "/" and not url.query and "text/html" in request.headers.get("Accept", "")):
            return _response(302, "", headers={"Location": UI_PREFIX})
        if path.startswith(UI_PREFIX):
            return _static(path[len(UI_PREFIX):] or "index.html")
        return self._oscquery(path, url.query)

    def _oscquery(self, path: str, query: str):
        if query == "HOST_INFO":
            return _json(200, self.host_info())
        node = find_node(self.tree(), path)
        if node is None:
            return _json(404, {"error": f"no such path {path}"})
        if query:
            if query not in ATTRIBUTES:
                return _json(400, {"error": f"unknown attribute {query}"})
            if query not in node:
                return _response(204, b"")
            return _json(200, {query: node[query]})
        return _json(200, node)

    def _clip(self, name: str):
        """``latest.wav`` / ``latest.png`` of the newest clip (on an executor thread: a picture takes ~0.1 s)."""
        kinds = {"latest.wav": "wav", "latest.png": "png"}
        if name not in kinds:
            return _response(404, f"no such clip file {name!r}: latest.wav or latest.png\n")
        last = self.engine.last_clip if self.engine is not None else None
        if last is None:
            return _response(404, "no clip rendered yet\n")
        kind = kinds[name]
        with self._clip_lock:  # one rendering at a time; a second request for the same clip reuses it
            seq, data = self._clip_files.get(kind, (None, b""))
            if seq != last["seq"]:
                data = (_wav_bytes if kind == "wav" else self._png_bytes)(last)
                self._clip_files[kind] = (last["seq"], data)
        return _response(200, data, content_type=CONTENT_TYPES["." + kind],
                         headers={"Cache-Control": "no-store", "X-Clip-Seq": str(last["seq"])})

    def _png_bytes(self, last: dict) -> bytes:
        import tempfile

        from stylesynth import plots, spectrogram

        synth = self.engine.synth
        spec = getattr(last["clip"], "spec", None)
        if spec is None:  # renderers without a spectrogram (the gaver model): analyse what is heard
            spec = spectrogram.encode(last["audio"], synth.rep)
        with tempfile.TemporaryDirectory() as tmp:
            path = plots.spectrogram_png(spec, synth.rep, Path(tmp) / "clip.png",
                                         title=f"{synth.name}: clip {last['seq']}")
            return path.read_bytes()

    # -- WebSocket ---------------------------------------------------------------------------------------------

    async def _serve_client(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        if len(self._clients) >= MAX_CLIENTS:
            await ws.close(1013, f"{MAX_CLIENTS} WebSocket clients are connected already")
            return
        client = _Client(ws)
        loop = asyncio.get_running_loop()
        client.relay, _ = await loop.create_datagram_endpoint(
            lambda: _Relay(client), local_addr=(self.osc_target[0], 0), remote_addr=self.osc_target)
        self._clients.add(client)
        bucket = TokenBucket(time.monotonic())
        sender = asyncio.create_task(client.send_forever())
        try:
            async for message in ws:
                if isinstance(message, str):
                    self._command(client, message)
                elif self._within_rate(client, bucket):
                    client.subscribed |= b"/notify" in message
                    client.relay.sendto(message)
        except ConnectionClosed:
            pass  # the client went away mid-frame: nothing to answer
        finally:
            self._clients.discard(client)
            sender.cancel()
            if client.subscribed:  # UDP has no disconnect: tell the OSC server this relay socket is gone
                client.relay.sendto(osc_packet("/notify", 0))
            client.relay.close()
            if client.dropped:
                log.info("WebSocket client %s: %d queued messages dropped (it read too slowly)",
                         ws.remote_address, client.dropped)

    @staticmethod
    def _within_rate(client: _Client, bucket) -> bool:
        """The OSC server's per-sender rate limit, applied before the relay: a WebSocket flood is cut here instead
        of filling the OSC socket's receive buffer, where it would crowd out other clients' datagrams."""
        now = time.monotonic()
        if bucket.take(1, now):
            return True
        bucket.dropped_unreported += 1
        if now - bucket.last_report >= 1.0:  # one /error a second, not one per dropped frame
            client.push(osc_packet(ERROR_ADDRESS, "", f"rate limit {RATE:g} messages/s exceeded: "
                                                      f"{bucket.dropped_unreported} frames dropped"))
            bucket.dropped_unreported, bucket.last_report = 0, now
        return False

    def _command(self, client: _Client, text: str) -> None:
        """A text frame: an OSCQuery command (``LISTEN`` / ``IGNORE``); anything else is answered with /error."""
        if len(text) > MAX_TEXT:
            return client.push(osc_packet(ERROR_ADDRESS, "", f"text frame of {len(text)} characters refused "
                                                             f"(commands are under {MAX_TEXT})"))
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if not isinstance(command, dict) or not isinstance(command.get("DATA"), str):
            return client.push(osc_packet(ERROR_ADDRESS, "", 'not an OSCQuery command: expected '
                                                             '{"COMMAND": "LISTEN" or "IGNORE", "DATA": "/path"}'))
        name, path = command.get("COMMAND"), command["DATA"]
        if name not in ("LISTEN", "IGNORE"):
            return client.push(osc_packet(ERROR_ADDRESS, path, f"unknown OSCQuery command {name!r}: this server "
                                                               "takes LISTEN and IGNORE"))
        if path not in self._paths:
            return client.push(osc_packet(ERROR_ADDRESS, path, f"{name}: {path!r} has no value to listen to "
                                                               "(see the tree's nodes with VALUE, or /error)"))
        if name == "LISTEN":
            client.listening.add(path)
        else:
            client.listening.discard(path)
            client.values.pop(path, None)

    def _on_engine_event(self, event: str, payload: dict) -> None:
        """Engine listener (any thread; must be quick): encode once, hand over to the loop, never wait."""
        loop = self._loop
        if not self._clients or loop is None or loop.is_closed():
            return
        if event == "value":
            address = P.PARAMS[payload["name"]].osc_address
            packet, coalesce = osc_packet(address, payload["value"]), True
        elif event == "clip":
            address, packet, coalesce = SEQ_ADDRESS, osc_packet(SEQ_ADDRESS, payload["seq"]), True
        elif event == "error":
            packet = osc_packet(ERROR_ADDRESS, payload["address"], payload["reason"])
            address, coalesce = ERROR_ADDRESS, False
        else:
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, address, packet, coalesce)
        except RuntimeError:  # the loop closed in between (shutdown)
            pass

    def _fan_out(self, address: str, packet: bytes, coalesce: bool) -> None:
        for client in self._clients:
            if address in client.listening:
                if coalesce:
                    client.push_value(address, packet)
                else:
                    client.push(packet)


# -- responses -----------------------------------------------------------------------------------------------

def _response(status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8",
              headers: dict | None = None):
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    data = body.encode() if isinstance(body, str) else body
    head = Headers()
    if status != 204:
        head["Content-Type"] = content_type
        head["Content-Length"] = str(len(data))
    head["Connection"] = "close"
    for key, value in (headers or {}).items():
        head[key] = value
    return Response(status, http.HTTPStatus(status).phrase, head, data)


def _json(status: int, body) -> object:
    return _response(status, json.dumps(body), content_type="application/json")


def _static(name: str):
    """A file of the page; only names that are files directly in :data:`WEB_DIR` (no paths, no dot files)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return _response(404, f"no such page file {name!r}\n")
    path = WEB_DIR / name
    if not path.is_file():
        return _response(404, f"no such page file {name!r}\n")
    return _response(200, path.read_bytes(), content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                     headers={"Cache-Control": "no-cache"})


def _wav_bytes(last: dict) -> bytes:
    """The clip as 16-bit PCM wav (every browser plays it; the float wavs in the cache are for OSC clients)."""
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    audio = np.clip(np.asarray(last["audio"], dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, audio, int(last["sample_rate"]), format="WAV", subtype="PCM_16")
    return buffer.getvalue()

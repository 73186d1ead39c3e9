"""OSCQuery: the control space as a JSON tree over HTTP, so ossia (Max, Pd), Chataigne or a browser can discover it.

The tree follows the OSCQuery proposal (Vidvox): each node has ``FULL_PATH`` and either ``CONTENTS`` (a container)
or ``TYPE``, ``RANGE``, ``ACCESS``, ``VALUE``, ``DESCRIPTION``, ``UNIT`` (a method). It is generated from
:mod:`stylesynth.params` on every request, with the engine's current values and the loaded model's prototype and
start-point names as ``RANGE`` ``VALS``. ``GET /?HOST_INFO`` tells the OSC port and transport; ``GET /path?VALUE``
(or ``?TYPE``, ...) returns one attribute. Read-only; WebSocket ``LISTEN`` is not offered (``HOST_INFO`` says so):
subscribers use ``/notify 1`` over OSC instead.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from stylesynth import params as P

log = logging.getLogger(__name__)

ACCESS_NONE, ACCESS_READ, ACCESS_WRITE, ACCESS_READ_WRITE = 0, 1, 2, 3
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "RANGE", "ACCESS", "VALUE", "DESCRIPTION", "UNIT")


def _oscquery_type(param: P.Param) -> str:
    return "T" if param.type == P.BOOL else param.type


def _value(param: P.Param, value):
    return bool(value) if param.type == P.BOOL else value


def build_tree(state=None, synth=None) -> dict:
    """The whole OSCQuery namespace as a dict (``state``: a ControlState for VALUE; ``synth``: the loaded
    renderer, for the names a string parameter accepts)."""
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
                "DESCRIPTION": param.description}
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
    trigger = container(P.PREFIX)["CONTENTS"]
    trigger["trigger"] = {"FULL_PATH": f"{P.PREFIX}/trigger", "TYPE": "f", "ACCESS": ACCESS_WRITE,
                          "RANGE": [{"MIN": 0.0, "MAX": 1.0}],
                          "DESCRIPTION": P.COMMANDS[f"{P.PREFIX}/trigger"].description}
    trigger["panic"] = {"FULL_PATH": f"{P.PREFIX}/panic", "ACCESS": ACCESS_NONE,
                        "DESCRIPTION": P.COMMANDS[f"{P.PREFIX}/panic"].description}
    return root


def find_node(tree: dict, path: str) -> dict | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


class OscQueryServer:
    """Serves :func:`build_tree` over HTTP on its own thread.

    Parameters
    ----------
    engine : stylesynth.engine.Engine or None
        Source of current values and model names.
    host, port : str, int
        Where to listen (port 0 picks a free one; :attr:`port` tells which).
    osc_port : int
        The OSC (UDP) port reported in ``HOST_INFO``.
    """

    def __init__(self, engine, host: str = "127.0.0.1", port: int = 9001, osc_port: int = 9000):
        self.engine = engine
        self.osc_port = osc_port
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server._handle(self)

            def log_message(self, fmt, *args):  # route to logging, quietly
                log.debug("oscquery: " + fmt, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="oscquery", daemon=True)

    def host_info(self) -> dict:
        return {"NAME": "stylesynth", "OSC_IP": self.host, "OSC_PORT": self.osc_port, "OSC_TRANSPORT": "UDP",
                "EXTENSIONS": {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "UNIT": True,
                               "TYPE": True, "TAGS": False, "CRITICAL": False, "CLIPMODE": False,
                               "LISTEN": False, "PATH_CHANGED": False}}

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = url.query
        if query == "HOST_INFO":
            return _send_json(request, 200, self.host_info())
        engine = self.engine
        tree = build_tree(engine.state if engine else None, engine.synth if engine else None)
        node = find_node(tree, unquote(url.path))
        if node is None:
            return _send_json(request, 404, {"error": f"no such path {url.path}"})
        if query:
            if query not in ATTRIBUTES:
                return _send_json(request, 400, {"error": f"unknown attribute {query}"})
            if query not in node:
                return _send_json(request, 204, None)
            return _send_json(request, 200, {query: node[query]})
        return _send_json(request, 200, node)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_json(request: BaseHTTPRequestHandler, status: int, body) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    if data:
        request.wfile.write(data)

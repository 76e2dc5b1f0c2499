"""What the browser tests drive: the real ``server.py`` with its web port on, the real line
client (``client.py``) over pipes, a raw protocol user on the TLS port, and pages in Debian's
Chromium, each in a browser context of its own (another person).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from support import insecure_context

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/lib/chromium/chromium")
TIMEOUT_SECONDS = 15.0

# Run in every page before its own scripts: the Content Security Policy violations the page
# reports (the event, not only the console), kept for the test to read.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def environment(home: Path) -> dict[str, str]:
    """A child's environment: XDG dirs of its own, so pins and data stay in the test's folder."""
    env = dict(os.environ)
    env.update(
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        PYTHONUNBUFFERED="1",
    )
    return env


class OutputLines:
    """A child's output read by a thread, so that waiting for a line has a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._output: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._output.put(line.rstrip("\n"))
        self._output.put("")  # the end

    def expect(self, pattern: str) -> re.Match[str]:
        """The next line of output that has ``pattern``; fails after TIMEOUT_SECONDS."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._output.get(timeout=left)
            except queue.Empty:
                break
            assert line or self.process.poll() is None, (
                f"output ended waiting for {pattern!r}: {self.lines}"
            )
            self.lines.append(line)
            if match := regex.search(line):
                return match
        raise AssertionError(f"no {pattern!r} in time: {self.lines}")

    def join(self) -> None:
        self._reader.join(TIMEOUT_SECONDS)
        assert self.process.stdout is not None
        self.process.stdout.close()


class ServerProcess:
    """``server.py`` with its web port on, in a data dir of its own."""

    def __init__(
        self, home: Path, port: int = 0, web_port: int = 0, settings: dict[str, str] | None = None
    ) -> None:
        env = environment(home)
        env["PARLEY_WEB_PORT"] = str(web_port)
        # Files on any free port: the default, the chat port + 1, may be another program's
        # when the chat port is a fixed one (a server restarted on the same ports).
        env["PARLEY_FILES_PORT"] = "0"
        env.update(settings or {})
        self.process = subprocess.Popen(
            [sys.executable, "server.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = OutputLines(self.process)
        self.port = int(self.expect(r"Server is running on 127\.0\.0\.1:(\d+)").group(1))
        match = self.expect(r"Web client on (https://127\.0\.0\.1:\d+)/ \(port (\d+)\)")
        self.url = match.group(1)  # web_public_url, as browsers are to open it
        self.web_port = int(match.group(2))  # where it listens

    @property
    def lines(self) -> list[str]:
        return self.output.lines

    def expect(self, pattern: str) -> re.Match[str]:
        return self.output.expect(pattern)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        status = self.process.wait(timeout=TIMEOUT_SECONDS)
        self.output.join()
        assert status == 0, self.lines


class ClientProcess:
    """The line client, ``client.py --nick NICK``, typed into and read over pipes."""

    def __init__(self, home: Path, port: int, nick: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "client.py", "--port", str(port), "--nick", nick],
            cwd=ROOT,
            env=environment(home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = OutputLines(self.process)
        self.expect("Welcome to the chat!$")

    def expect(self, pattern: str) -> re.Match[str]:
        return self.output.expect(pattern)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def quit(self) -> None:
        if self.process.poll() is None:
            self.type("/quit")
            try:
                self.process.wait(timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT_SECONDS)
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.output.join()


@functools.cache
def _client_context() -> ssl.SSLContext:
    """One context for every TlsUser: making one reads the system's CA bundle (tens of ms)."""
    return insecure_context()


class TlsUser:
    """A protocol client on the TLS port: newline-delimited JSON frames."""

    def __init__(self, port: int, nick: str, source: str = "127.0.0.1", **credentials: str) -> None:
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT_SECONDS, source_address=(source, 0)
        )
        self.sock: ssl.SSLSocket = _client_context().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self.last_id = 0
        self.events: list[dict[str, Any]] = []
        self.request("hello", versions=[1])
        reply = self.request("nick", nick=nick, **credentials)
        assert reply["type"] == "ok", reply

    def frame(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "the server closed the connection"
        result: dict[str, Any] = json.loads(line)
        return result

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.last_id += 1
        self.sock.sendall(json.dumps({"type": kind, "id": self.last_id, **fields}).encode() + b"\n")
        while True:
            frame = self.frame()
            if frame.get("id") == self.last_id and frame["type"] != "message":
                return frame
            self.events.append(frame)

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        while True:
            frame = self.events.pop(0) if self.events else self.frame()
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class HoldingProxy:
    """A TCP relay on loopback in front of the web port, for a network that drops: it can cut
    the browser's side of every connection while keeping the server's side open (the server
    has not noticed yet, as after a phone loses its signal), and later let those go.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # to see ``close`` soon
        self.port: int = self.listener.getsockname()[1]
        self.upstream_port = 0
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []  # every one made: all closed by ``close``
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []
        self._cut: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self._sockets.append(client)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                _close(client)  # the server is gone: so is this connection
                continue
            with self._lock:
                self._sockets.append(upstream)
                self._pairs.append((client, upstream))
            self._start(self._pipe, client, upstream)
            self._start(self._pipe, upstream, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            return
        if source in self._cut:
            return  # cut by the test: the other side is held open
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # an ordinary close passes on

    def cut_browsers(self) -> None:
        """Drop the browser's side of every connection; the server's side stays open."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            self._cut.add(client)
            self._held.append(upstream)
            _close(client)

    def release(self) -> None:
        """Close the server's side of the connections cut: now the server sees them go."""
        held, self._held = self._held, []
        for upstream in held:
            _close(upstream)

    def close(self) -> None:
        self._closed = True
        self._threads[0].join(TIMEOUT_SECONDS)  # no more accepted after this
        self.listener.close()
        for end in self._sockets:
            _close(end)
        for thread in self._threads[1:]:
            thread.join(TIMEOUT_SECONDS)


def _close(end: socket.socket) -> None:
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)
    end.close()


class Violations:
    """Content Security Policy violations on every page watched: the console's reports and
    the pages' own ``securitypolicyviolation`` events.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.pages: list[Page] = []

    def watch(self, page: Page) -> Page:
        def seen(message: ConsoleMessage) -> None:
            if (
                "Content Security Policy" in message.text
                or "Content-Security-Policy" in message.text
            ):
                self.messages.append(message.text)

        page.on("console", seen)
        self.pages.append(page)
        return page

    def all(self) -> list[str]:
        """Everything reported so far, by the console and by the pages still open."""
        found = list(self.messages)
        for page in self.pages:
            if not page.is_closed():
                found += page.evaluate("window.__cspViolations || []")
        return found


def new_context(browser: Browser, contexts: list[BrowserContext], **options: Any) -> BrowserContext:
    """A browser context of its own (its own cookies and storage: another person)."""
    context = browser.new_context(ignore_https_errors=True, **options)
    context.set_default_timeout(TIMEOUT_SECONDS * 1000)
    context.add_init_script(WATCH_CSP)
    contexts.append(context)
    return context


def open_page(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    url: str,
    **options: Any,
) -> Page:
    """The web client in a new browser context."""
    page = violations.watch(new_context(browser, contexts, **options).new_page())
    page.goto(url + "/")
    return page


def log_in(page: Page, nick: str, password: str = "", *, create: bool = False) -> None:
    """Log in on the page's form: a guest without ``password``; with ``create``, a new account."""
    page.get_by_label("Nickname").fill(nick)
    if password:
        page.get_by_label(re.compile("^Password")).fill(password)
    page.get_by_role("button", name="Create account" if create else "Log in").click()
    expect(page.get_by_role("status")).to_have_text("Connected")


def logged_in(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    url: str,
    nick: str,
    password: str = "",
    *,
    create: bool = False,
    **options: Any,
) -> Page:
    """The web client in a new browser context, logged in (see ``log_in``)."""
    page = open_page(browser, contexts, violations, url, **options)
    log_in(page, nick, password, create=create)
    return page


def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("^Message to"))
    box.fill(text)
    box.press("Enter")


def the_log(page: Page) -> Any:
    return page.get_by_role("log")


def conversation_button(page: Page, name: str) -> Any:
    return page.get_by_role("navigation").get_by_role("button", name=name, exact=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

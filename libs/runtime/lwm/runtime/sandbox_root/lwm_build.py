"""Run one command of an environment build (uv) inside the build sandbox; standard library only.

Started as `python -I -S -B lwm_build.py COMMAND...` inside the sandbox by
lwm/runtime/sandboxed_build.py. It first switches to the sandbox uid where the
sandbox asks for it (as the model runner does). The sandbox has no network:
when LWM_INDEX_PROXY_SOCKET names the unix socket of the service's index proxy
(bound into the sandbox), this script listens on 127.0.0.1 of the sandbox's own
loopback, forwards every connection to that socket, and runs COMMAND with
HTTPS_PROXY/HTTP_PROXY pointing at the listener. It exits with COMMAND's status.
"""

import os
import selectors
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lwm_runner import drop_privileges, limit_processes  # the runner's own switch to the sandbox uid

del sys.path[0]

PROXY_SOCKET_ENV = "LWM_INDEX_PROXY_SOCKET"
# Variables for this script only, not for the command.
OWN_ENV = (PROXY_SOCKET_ENV, "LWM_SANDBOX_UID", "LWM_SANDBOX_GID", "LWM_SANDBOX_MAX_PROCESSES")


def forward(listener, proxy_path):
    """Relay every connection to the listener to a new connection to the proxy's unix socket.

    One thread, non-blocking: a side is read only when what it sent before has been delivered, so one
    tunnel whose reader stalls (uv busy with a build) holds up nothing else.
    """
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    peers = {}
    pending = {}  # socket -> bytes still to be written to it

    def watch(sock):
        events = (0 if pending[peers[sock]] else selectors.EVENT_READ) | (selectors.EVENT_WRITE if pending[sock] else 0)
        registered = sock in selector.get_map()
        if events and registered:
            selector.modify(sock, events)
        elif events:
            selector.register(sock, events)
        elif registered:
            selector.unregister(sock)

    def close(sock):
        for end in (sock, peers[sock]):
            if end in selector.get_map():
                selector.unregister(end)
            del peers[end], pending[end]
            end.close()

    while True:
        for key, mask in selector.select():
            sock = key.fileobj
            if sock is listener:
                client, _ = listener.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    upstream.connect(proxy_path)
                except OSError:
                    client.close()
                    upstream.close()
                    continue
                peers[client], peers[upstream] = upstream, client
                for end in (client, upstream):
                    end.setblocking(False)
                    pending[end] = bytearray()
                watch(client)
                watch(upstream)
                continue
            if sock not in peers:
                continue  # closed with its peer earlier in this round
            peer = peers[sock]
            try:
                if mask & selectors.EVENT_WRITE and pending[sock]:
                    del pending[sock][: sock.send(pending[sock])]
                if mask & selectors.EVENT_READ and not pending[peer]:
                    data = sock.recv(65536)
                    if not data:  # nothing of it is pending: it is only read when its last data was delivered
                        close(sock)
                        continue
                    pending[peer] += data
            except BlockingIOError:
                pass
            except OSError:
                close(sock)
                continue
            watch(sock)
            watch(peer)


def main():
    drop_privileges()
    limit_processes()
    command = sys.argv[1:]
    if not command:
        raise SystemExit("usage: lwm_build.py COMMAND...")
    env = {name: value for name, value in os.environ.items() if name not in OWN_ENV}
    proxy_path = os.environ.get(PROXY_SOCKET_ENV)
    if proxy_path:
        listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=forward, args=(listener, proxy_path), daemon=True).start()
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        env.update({"HTTPS_PROXY": url, "HTTP_PROXY": url, "ALL_PROXY": url})
    try:
        code = subprocess.call(command, env=env)
    except OSError as error:
        print("lwm_build: could not start %s: %s" % (command[0], error), file=sys.stderr)
        code = 127
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()

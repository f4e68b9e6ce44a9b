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
from lwm_runner import drop_privileges, limit_processes  # noqa: E402  (the runner's own switch to the sandbox uid)

del sys.path[0]

PROXY_SOCKET_ENV = "LWM_INDEX_PROXY_SOCKET"
# Variables for this script only, not for the command.
OWN_ENV = (PROXY_SOCKET_ENV, "LWM_SANDBOX_UID", "LWM_SANDBOX_GID", "LWM_SANDBOX_MAX_PROCESSES")


def forward(listener, proxy_path):
    """Relay every connection to the listener to a new connection to the proxy's unix socket (one thread)."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    peers = {}
    while True:
        for key, _ in selector.select():
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
                selector.register(client, selectors.EVENT_READ)
                selector.register(upstream, selectors.EVENT_READ)
                continue
            if sock not in peers:
                continue  # closed with its peer earlier in this round
            peer = peers[sock]
            try:
                data = sock.recv(65536)
                if data:
                    peer.sendall(data)
                    continue
            except OSError:
                pass
            for end in (sock, peer):  # one side closed: the tunnel is over
                selector.unregister(end)
                del peers[end]
                end.close()


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

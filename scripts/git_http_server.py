#!/usr/bin/python3
"""Serves the bare repositories under ROOT over smart HTTP by running `git http-backend` as CGI.

For tests only: listens on 127.0.0.1 on a free port and prints that port as its first line of
standard output. Standard library only.

    git_http_server.py ROOT [--user NAME --password SECRET] [--trickle-bytes N --trickle-delay SECONDS]

--user/--password require HTTP Basic authentication (401 with WWW-Authenticate otherwise).
The server exits when its standard input reaches end of file, so it never outlives the test process
that holds the other end (a test runner may block SIGTERM in its children).

--trickle-* send upload-pack responses (the pack) N bytes at a time with a pause in between, so a
client stays inside a transfer long enough to be cancelled.
"""

import argparse
import base64
import hmac
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def parse_arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--trickle-bytes", type=int, default=0)
    parser.add_argument("--trickle-delay", type=float, default=0.0)
    arguments = parser.parse_args()
    if (arguments.user is None) != (arguments.password is None):
        parser.error("--user and --password go together")
    return arguments


class GitHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, the response ends when the connection closes.
    protocol_version = "HTTP/1.0"
    settings = None

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def log_message(self, format, *args):
        sys.stderr.write("git_http_server: " + (format % args) + "\n")

    def authorized_user(self):
        settings = self.settings
        if settings.user is None:
            return ""
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if hmac.compare_digest(user, settings.user) and hmac.compare_digest(password, settings.password):
            return user
        return None

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def serve(self):
        user = self.authorized_user()
        if user is None:
            payload = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return

        path, _, query = self.path.partition("?")
        body = self.read_body()
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.settings.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": self.settings.root,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.0",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        if user:
            environment["REMOTE_USER"] = user
        for header, variable in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
            if self.headers.get(header):
                environment[variable] = self.headers[header]

        result = subprocess.run(["git", "http-backend"], input=body, env=environment, capture_output=True)
        if result.stderr:
            sys.stderr.write(result.stderr.decode("utf-8", "replace"))
        output = result.stdout
        separator = b"\r\n\r\n" if b"\r\n\r\n" in output else b"\n\n"
        head, _, payload = output.partition(separator)
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split(" ")[0])
            elif name:
                headers.append((name, value.strip()))
        if result.returncode != 0 and status == 200:
            status = 500

        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.write_payload(payload, trickle=self.command == "POST" and path.endswith("git-upload-pack"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def write_payload(self, payload, trickle):
        step = self.settings.trickle_bytes
        if not trickle or step <= 0:
            self.wfile.write(payload)
            return
        for offset in range(0, len(payload), step):
            self.wfile.write(payload[offset:offset + step])
            self.wfile.flush()
            time.sleep(self.settings.trickle_delay)


def main():
    settings = parse_arguments()
    settings.root = os.path.abspath(settings.root)
    GitHandler.settings = settings
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHandler)
    server.daemon_threads = True

    def exit_when_stdin_closes():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

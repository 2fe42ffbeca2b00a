#!/usr/bin/python3
"""A loopback SMTP sink for tests, built on aiosmtpd (Debian: python3-aiosmtpd).

Every accepted message becomes one JSON line in --out: the envelope, the raw bytes (base64),
and what Python's email package makes of them (headers as sent and decoded, each body part
decoded, parser defects, the longest line), so tests can check the message without a MIME parser.

Replies are steered by the addresses in the envelope (local part, case-insensitive):
  recipient  reject550@…, defer451@…, rcpt<NNN>@…  RCPT TO answered with code NNN
  recipient  data<NNN>@…                           RCPT accepted, end of DATA answered NNN
  sender     mail<NNN>@…                           MAIL FROM answered NNN
Other options:
  --auth USER:PASS   offer AUTH PLAIN/LOGIN (without TLS) and require it before MAIL
  --blackhole        accept connections and never answer (for timeouts)

The server binds --host:--port (port 0 picks a free port) and, once listening, writes the port
to --ready-file, so a test never races a port it picked itself. Stop it with SIGTERM.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import re
import signal
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

RCPT_MAGIC = re.compile(r"^(?:reject|defer|rcpt)(\d{3})$", re.IGNORECASE)
DATA_MAGIC = re.compile(r"^data(\d{3})$", re.IGNORECASE)
MAIL_MAGIC = re.compile(r"^mail(\d{3})$", re.IGNORECASE)


def local_part(address):
    return address.rsplit("@", 1)[0] if "@" in address else address


def reply(code, address, what):
    code = int(code)
    klass = code // 100
    return f"{code} {klass}.7.1 <{address}>: {what} by smtp_sink"


def describe(data):
    """What a mail reader would see, as plain JSON values."""
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    parts = []
    defects = [type(d).__name__ for d in parsed.defects]
    for part in parsed.walk():
        defects += [type(d).__name__ for d in part.defects]
        if part.is_multipart():
            continue
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "transfer_encoding": part.get("Content-Transfer-Encoding"),
            "content": part.get_content(),
        })
    lines = data.split(b"\r\n")
    return {
        "raw_headers": [[name, value] for name, value in raw.items()],
        "headers": [[name, str(value)] for name, value in parsed.items()],
        "content_type": parsed.get_content_type(),
        "parts": parts,
        "defects": defects,
        "max_line_length": max(len(line) for line in lines),
        # A bare CR or LF would mean the client did not write CRLF line endings.
        "bare_line_breaks": sum(line.count(b"\n") + line.count(b"\r") for line in lines),
    }


class Handler:
    def __init__(self, out_path):
        self.out_path = out_path

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        match = MAIL_MAGIC.match(local_part(address))
        if match:
            return reply(match.group(1), address, "sender refused")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        match = RCPT_MAGIC.match(local_part(address))
        if match:
            code = int(match.group(1))
            return reply(code, address, "recipient refused" if code >= 500 else "recipient deferred")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            match = DATA_MAGIC.match(local_part(address))
            if match:
                return reply(match.group(1), address, "message refused")
        data = envelope.original_content or envelope.content
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "raw_base64": base64.b64encode(data).decode("ascii"),
        }
        try:
            record.update(describe(data))
        except Exception as error:  # the test should see what broke, not a dropped message
            record["parse_error"] = repr(error)
        with open(self.out_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 OK queued by smtp_sink"


def authenticator_for(credentials):
    user, _, password = credentials.partition(":")

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user and auth_data.password.decode() == password)
        # handled=False: let aiosmtpd send the 535 itself (its default assumes we replied).
        return AuthResult(success=ok, handled=False)

    return authenticate


async def blackhole(reader, writer):
    # Read and never answer, so the client waits for a greeting that never comes.
    while await reader.read(4096):
        pass
    writer.close()


async def main():
    # Foundation's Process on Linux starts children with the parent thread's signal mask, which
    # blocks SIGTERM: unblock it, or the test's terminate() would never stop this server.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON lines file, appended to")
    parser.add_argument("--ready-file", required=True, help="gets the port once listening")
    parser.add_argument("--auth", help="USER:PASS to require AUTH")
    parser.add_argument("--blackhole", action="store_true")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    if args.blackhole:
        server = await asyncio.start_server(blackhole, args.host, args.port)
    else:
        handler = Handler(args.out)
        options = {"hostname": "smtp-sink.test", "decode_data": False}
        if args.auth:
            options.update(authenticator=authenticator_for(args.auth), auth_required=True,
                           auth_require_tls=False)
        server = await loop.create_server(lambda: SMTP(handler, **options), args.host, args.port)

    port = server.sockets[0].getsockname()[1]
    # Written then renamed, so a reader never sees a half-written port.
    with open(args.ready_file + ".tmp", "w", encoding="ascii") as ready:
        ready.write(f"{port}\n")
    os.replace(args.ready_file + ".tmp", args.ready_file)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

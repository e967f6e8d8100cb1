#!/usr/bin/env python3
"""The tests' access-control panel: LibOSDP's own control panel (CP, PyPI `libosdp`) on the pty
master given as standard input. Prints one JSON line per fact: the PD's link state when it
changes, and each card read (with the wall-clock time it arrived). Like a panel that grants,
it answers each card read with a green LED and a beep, which the reader must accept.

LibOSDP's CP waits 300 s before it polls a PD again that failed once (one NAK, one corrupted
reply); panels retry within seconds, and so does this one (`kind: "retry"`)."""

import argparse
import json
import os
import sys
import threading
import time

import osdp


class FdChannel(osdp.Channel):
    """The serial line: a non-blocking file descriptor."""

    def __init__(self, fd):
        super().__init__()
        self.fd = fd
        os.set_blocking(fd, False)

    def read(self, max_bytes):
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""

    def write(self, buf):
        try:
            return os.write(self.fd, buf)
        except (BlockingIOError, InterruptedError):
            return 0

    def flush(self):
        pass


def say(**fact):
    fact["t"] = time.time()
    sys.stdout.write(json.dumps(fact) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--address", type=int, default=0)
    ap.add_argument("--scbk", help="Secure Channel Base Key, 32 hex digits (none: clear)")
    args = ap.parse_args()
    flags = [osdp.LibFlag.EnforceSecure] if args.scbk else []
    scbk = bytes.fromhex(args.scbk) if args.scbk else None
    pd = osdp.PDInfo(args.address, FdChannel(sys.stdin.fileno()), scbk=scbk, flags=flags)
    cp = osdp.ControlPanel([pd], log_level=osdp.LogLevel.Warning)
    replies = []

    def on_event(_pd, event):
        if event.get("event") == osdp.Event.CardRead:
            say(
                kind="card",
                format=event.get("format"),
                bits=event.get("length"),
                data=bytes(event.get("data", b"")).hex(),
            )
            replies.append(True)
        return 0

    cp.set_event_handler(on_event)
    cp.start()
    say(kind="started", pid=os.getpid())
    last = None
    was_online = False
    retry_at = 0.0
    try:
        while True:
            now = (cp.is_online(args.address), cp.is_sc_active(args.address))
            if now != last:
                say(kind="link", online=now[0], sc=now[1])
                last = now
            was_online = was_online or now[0]
            if was_online and not now[0] and time.time() >= retry_at:
                # Restart the PD's state machine: disabled, then enabled (ID, CAP, SC again).
                if cp.is_pd_enabled(args.address):
                    cp.disable_pd(args.address)
                else:
                    cp.enable_pd(args.address)
                    say(kind="retry")
                    retry_at = time.time() + 1.0
            while replies:
                replies.pop()
                # A granting panel's answer: green for 2 s, two short beeps.
                cp.submit_command(args.address, {
                    "command": osdp.Command.LED, "reader": 0, "led_number": 0,
                    "control_code": 2, "on_count": 5, "off_count": 0, "on_color":
                    osdp.CommandLEDColor.Green, "off_color": osdp.CommandLEDColor.Black,
                    "timer_count": 20, "temporary": True,
                })
                cp.submit_command(args.address, {
                    "command": osdp.Command.Buzzer, "reader": 0, "control_code": 2,
                    "on_count": 1, "off_count": 1, "rep_count": 2,
                })
            time.sleep(0.02)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        cp.stop()


if __name__ == "__main__":
    threading.excepthook = lambda a: os._exit(1)
    main()

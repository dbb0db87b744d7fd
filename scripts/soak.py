#!/usr/bin/env python3
"""ladderd soak harness (issue 30, "Long-run figures"). Run it through scripts/soak.sh.

Runs the real binary for --hours with the built-in demo, an RTMP publisher and an SRT
publisher that are SIGKILLed and restarted every minute, a backup RTMP publisher that
takes over from the RTMP primary and hands back, 50 LL-HLS and 10 DASH pollers, the DVR
on, the archive to a one-node Garage when a `garage` binary is found, and a SIGHUP every
10 minutes. Every 30 s it samples ladderd's RSS, open fds, threads, CPU, DVR disk use,
archive lag, WARN/ERROR log lines and the pollers' errors. At the end (or on Ctrl-C) it
prints the samples as a Markdown table (also OUT/soak.md, and OUT/soak.json), draws OUT/soak.svg, and exits
non-zero if ladderd died (or did not stop cleanly on SIGTERM).

Standard library only.
"""

import argparse
import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

STOP = threading.Event()
# Pollers and publishers run until this; set at the end of the load phase (and with STOP).
LOAD_STOP = threading.Event()
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"[soak {now():8.1f}s] {msg}", flush=True)


def free_port(kind=socket.SOCK_STREAM, taken=set()):
    while True:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


# ---------------------------------------------------------------- processes

class Procs:
    """Every child, each in a session of its own (a Ctrl-C reaches only us), with
    its pid in OUT/work/pids so soak.sh's trap can finish what we could not."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.lock = threading.Lock()
        self.live = {}

    def spawn(self, name, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        with self.lock:
            self.live[p.pid] = (name, p)
            self._write()
        return p

    def forget(self, p):
        with self.lock:
            self.live.pop(p.pid, None)
            self._write()

    def _write(self):
        with open(self.pidfile, "w") as f:
            for pid in self.live:
                f.write(f"{pid}\n")

    def kill(self, p, sig=signal.SIGKILL, wait=10.0):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        self.forget(p)
        return p.returncode

    def kill_all(self):
        with self.lock:
            items = list(self.live.values())
        for _, p in items:
            self.kill(p, signal.SIGKILL, wait=5.0)


# ---------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection from a given loopback source address."""

    def __init__(self, port, src="127.0.0.1", timeout=15.0):
        self.port, self.src, self.timeout = port, src, timeout
        self.conn = None

    def get(self, path):
        """(status, body bytes); raises OSError / http.client errors."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout,
                    source_address=(self.src, 0))
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return r.status, body
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                # A keep-alive connection the server closed while idle: once more.
                self.close()
                if attempt == 1:
                    raise e
            except BaseException:
                self.close()
                raise

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def error_kind(e):
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "reset"
    if isinstance(e, http.client.IncompleteRead):
        return "incomplete_body"
    return type(e).__name__


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.Counter()
        self.err = collections.Counter()

    def good(self, kind):
        with self.lock:
            self.ok[kind] += 1

    def bad(self, kind):
        with self.lock:
            self.err[kind] += 1

    def totals(self):
        with self.lock:
            return sum(self.ok.values()), sum(self.err.values())


HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]*part(\d+)\.(\d+)\.m4s)"')


def ll_hls_poller(i, port, src, stream, rendition, stats):
    """A low-latency player's request loop on one rendition: blocking playlist reload
    for the hinted part (_HLS_msn/_HLS_part), then that part; again at the next hint."""
    c = Client(port, src)
    base = f"/live/{stream}/{rendition}/"
    want = None  # (msn, part) asked for with the blocking reload
    tag = f"hls/{stream}"
    time.sleep((i % 10) * 0.1)
    while not LOAD_STOP.is_set():
        try:
            q = "" if want is None else f"?_HLS_msn={want[0]}&_HLS_part={want[1]}"
            st, body = c.get(base + "playlist.m3u8" + q)
            if st != 200:
                stats.bad(f"{tag} playlist {st}")
                want = None
                LOAD_STOP.wait(1.0)
                continue
            stats.good("hls playlist")
            text = body.decode("utf-8", "replace")
            if want is not None:
                name = f"part{want[0]}.{want[1]}.m4s"
                m = re.search(r'#EXT-X-PART:[^\n]*URI="([^"]*' + re.escape(name) + ')"', text)
                if m is None:
                    # Answered because the playlist moved past it: the segment was
                    # cut short (a discontinuity: drop, failover, slate), so that
                    # part never exists. What RFC 8216 allows; counted, not an error.
                    later = [(int(x), int(y)) for x, y in re.findall(r'URI="[^"]*part(\d+)\.(\d+)\.m4s"', text)]
                    segs = [int(x) for x in re.findall(r'^[^#\n][^\n]*seg(\d+)\.m4s$', text, re.M)]
                    if any(pp > want for pp in later) or any(n >= want[0] for n in segs):
                        stats.good("hls hinted part skipped (segment cut short)")
                    else:
                        stats.bad(f"{tag} asked part not listed")
                else:
                    pst, pbody = c.get(base + m.group(1))
                    if pst != 200 or not pbody:
                        stats.bad(f"{tag} part {pst}{'' if pbody else ' empty'}")
                    else:
                        stats.good("hls part")
            m = HINT.search(text)
            if m is None:
                stats.bad(f"{tag} no preload hint" + (" (ENDLIST)" if "#EXT-X-ENDLIST" in text else ""))
                want = None
                LOAD_STOP.wait(1.0)
                continue
            want = (int(m.group(2)), int(m.group(3)))
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            if LOAD_STOP.is_set():
                break
            stats.bad(f"{tag} {error_kind(e)}")
            want = None
            LOAD_STOP.wait(1.0)
    c.close()


MPD_NS = "{urn:mpeg:dash:schema:mpd:2011}"


def newest_segment(mpd_text, rendition):
    """(media URI relative to the MPD, number) of the newest listed segment of the
    video Representation `rendition` (else the first video one) in the last Period."""
    root = ET.fromstring(mpd_text)
    periods = root.findall(MPD_NS + "Period")
    if not periods:
        return None
    for aset in periods[-1].findall(MPD_NS + "AdaptationSet"):
        if aset.get("contentType") != "video":
            continue
        reps = aset.findall(MPD_NS + "Representation")
        if not reps:
            return None
        rep = next((r for r in reps if r.get("id") == rendition), reps[0])
        tmpl = rep.find(MPD_NS + "SegmentTemplate")
        if tmpl is None:
            tmpl = aset.find(MPD_NS + "SegmentTemplate")
        tl = tmpl.find(MPD_NS + "SegmentTimeline")
        count = sum(1 + int(s.get("r", "0")) for s in tl.findall(MPD_NS + "S"))
        if count == 0:
            return None
        n = int(tmpl.get("startNumber", "1")) + count - 1
        uri = tmpl.get("media").replace("$RepresentationID$", rep.get("id")).replace("$Number$", str(n))
        return uri, n
    return None


def dash_poller(i, port, src, stream, rendition, stats, every=2.0):
    c = Client(port, src)
    tag = f"dash/{stream}"
    last = None
    LOAD_STOP.wait((i % 10) * 0.2)
    while not LOAD_STOP.is_set():
        t = time.monotonic()
        try:
            st, body = c.get(f"/live/{stream}/manifest.mpd")
            if st != 200:
                stats.bad(f"{tag} mpd {st}")
            else:
                stats.good("dash mpd")
                seg = newest_segment(body, rendition)
                if seg is None:
                    stats.bad(f"{tag} mpd without segments")
                elif seg != last:
                    sst, sbody = c.get(f"/live/{stream}/{seg[0]}")
                    if sst != 200 or not sbody:
                        stats.bad(f"{tag} segment {sst}{'' if sbody else ' empty'}")
                    else:
                        stats.good("dash segment")
                        last = seg
        except ET.ParseError:
            stats.bad(f"{tag} mpd not XML")
        except Exception as e:  # noqa: BLE001
            if LOAD_STOP.is_set():
                break
            stats.bad(f"{tag} {error_kind(e)}")
        LOAD_STOP.wait(max(0.0, every - (time.monotonic() - t)))
    c.close()


# ---------------------------------------------------------------- publishers

class Publisher:
    """An ffmpeg publish (-re, looped, -c copy), SIGKILLed and restarted every
    `drop_every` seconds (after `gap` seconds off air) when drop_every > 0; restarted
    (and counted) whenever it exits by itself."""

    def __init__(self, procs, name, argv, logpath, drop_every, first_drop, gap):
        self.procs, self.name, self.argv, self.logpath = procs, name, argv, logpath
        self.drop_every, self.gap = drop_every, gap
        self.next_drop = now() + first_drop if drop_every > 0 else None
        self.p = None
        self.drops = 0
        self.unexpected_exits = 0
        self.exit_notes = collections.Counter()
        self.logf = open(logpath, "ab")
        self.thread = None

    def start(self):
        self.p = self.procs.spawn(self.name, self.argv, stderr=self.logf)

    def run(self):
        """Supervise in a thread of its own until LOAD_STOP."""
        self.start()
        def loop():
            while not LOAD_STOP.is_set():
                self.tick()
                LOAD_STOP.wait(0.25)
        self.thread = threading.Thread(target=loop, daemon=True, name=self.name)
        self.thread.start()

    def tick(self):
        if self.p is None:
            return
        rc = self.p.poll()
        if rc is not None:
            self.procs.forget(self.p)
            self.unexpected_exits += 1
            self.exit_notes[f"exit {rc}"] += 1
            log(f"{self.name}: ffmpeg exited by itself ({rc}); restarting in 2 s")
            LOAD_STOP.wait(2.0)
            if not LOAD_STOP.is_set():
                self.start()
            return
        if self.next_drop is not None and now() >= self.next_drop:
            self.procs.kill(self.p, signal.SIGKILL)
            self.drops += 1
            LOAD_STOP.wait(self.gap)
            if not LOAD_STOP.is_set():
                self.start()
            self.next_drop += self.drop_every

    def stop(self):
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.p is not None:
            self.procs.kill(self.p, signal.SIGKILL)
            self.p = None


# ---------------------------------------------------------------- Garage

def find_garage():
    cands = [os.environ.get("LADDERD_GARAGE"), os.path.expanduser("~/.cargo/bin/garage"),
             "/usr/local/bin/garage", shutil.which("garage")]
    return next((c for c in cands if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def start_garage(procs, binary, work):
    """A one-node Garage on loopback with bucket `ladderd` and a key that may write
    it (as tests/archive.rs sets it up). Returns (s3 endpoint, key id, secret)."""
    d = os.path.join(work, "garage")
    os.makedirs(d, exist_ok=True)
    rpc, s3, admin = free_port(), free_port(), free_port()
    cfg = os.path.join(d, "garage.toml")
    with open(cfg, "w") as f:
        f.write(
            f'metadata_dir = "{d}/meta"\ndata_dir = "{d}/data"\ndb_engine = "lmdb"\n'
            f'replication_factor = 1\nrpc_bind_addr = "127.0.0.1:{rpc}"\n'
            f'rpc_public_addr = "127.0.0.1:{rpc}"\nrpc_secret = "{"1d5e" * 16}"\n\n'
            f'[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{s3}"\n'
            f'root_domain = ".s3.garage.localhost"\n\n[admin]\napi_bind_addr = "127.0.0.1:{admin}"\n')
    procs.spawn("garage", [binary, "-c", cfg, "server"],
                stderr=open(os.path.join(d, "garage.log"), "ab"))
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", s3), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("garage did not listen within 30 s (see work/garage/garage.log)")
            time.sleep(0.2)

    def cli(*a):
        out = subprocess.run([binary, "-c", cfg, *a], capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        if out.returncode != 0:
            raise RuntimeError(f"garage {' '.join(a)}: {text}")
        return text

    node = cli("node", "id", "-q").strip().split("@")[0]
    cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
    cli("layout", "apply", "--version", "1")
    cli("bucket", "create", "ladderd")
    key = cli("key", "create", "ladderd-key")

    def field(name):
        for line in key.splitlines():
            if name in line.lower() and ":" in line:
                return line.split(":", 1)[1].strip()
        raise RuntimeError(f"no {name} in: {key}")

    kid, secret = field("key id"), field("secret key")
    cli("bucket", "allow", "--read", "--write", "--owner", "ladderd", "--key", "ladderd-key")
    return f"http://127.0.0.1:{s3}", kid, secret


# ---------------------------------------------------------------- sampling

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def du_mib(path):
    try:
        out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, timeout=60)
        return int(out.stdout.split()[0]) / 1024
    except Exception:  # noqa: BLE001
        return float("nan")


METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(port):
    """{name: sum over labels}, plus {name{labels}: value} for the labelled series."""
    c = Client(port, timeout=10)
    try:
        st, body = c.get("/metrics")
    finally:
        c.close()
    if st != 200:
        return {}
    out = collections.defaultdict(float)
    for line in body.decode("utf-8", "replace").splitlines():
        m = METRIC.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] += v
        if m.group(2):
            out[m.group(1) + m.group(2)] = v
    return out


LEVEL = re.compile(r"^\S+\s+(WARN|ERROR)\s+(.*)$")


class LogCounter:
    """Counts WARN/ERROR lines of ladderd's log, incrementally, and groups them by
    message (numbers masked) for the report."""

    def __init__(self, path):
        self.path, self.pos = path, 0
        self.counts = collections.Counter()
        self.kinds = collections.Counter()
        self.rest = b""

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except OSError:
            return
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        for raw in lines:
            line = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode("utf-8", "replace"))
            m = LEVEL.match(line)
            if m:
                self.counts[m.group(1)] += 1
                msg = re.sub(r"\d+(\.\d+)?", "N", m.group(2))[:160]
                self.kinds[f"{m.group(1)} {msg}"] += 1


# ---------------------------------------------------------------- report

def fmt(v, nd=1):
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def hms(secs):
    secs = int(round(secs))
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


COLUMNS = [
    ("time", lambda s: hms(s["t"])),
    ("load", lambda s: s.get("phase", "on")),
    ("RSS MiB", lambda s: fmt(s["rss"])),
    ("fds", lambda s: fmt(s["fds"])),
    ("threads", lambda s: fmt(s["threads"])),
    ("CPU %", lambda s: fmt(s["cpu"], 0)),
    ("DVR MiB", lambda s: fmt(s["dvr"])),
    ("recordings", lambda s: fmt(s.get("recordings"), 0)),
    ("archive lag s (pending)", lambda s: "off" if s["lag"] is None else f"{fmt(s['lag'])} ({fmt(s['pending'], 0)})"),
    ("WARN / ERROR lines", lambda s: f"{s['warn']} / {s['error']}"),
    ("poller errors", lambda s: fmt(s["perr"])),
    ("poller requests ok", lambda s: fmt(s["pok"])),
    ("blocked waiters", lambda s: fmt(s["waiters"], 0)),
    ("switches", lambda s: fmt(s["switches"], 0)),
]


# What the bounded queues can hold at most with the soak's config (the defaults in
# src/config.rs and src/store/*; the soak sets none of them) and its three 640x360 streams.
PICTURE = 640 * 360 * 3 // 2  # one decoded 4:2:0 picture
QUEUE_BOUNDS = [
    "queue bounds (the most each can hold with this config):",
    f"    rung queues: 60 pictures (+1 segment-boundary slot) per rung, one decoded source picture shared "
    f"by every rung (Arc): at most 61 × {PICTURE / 2**20:.2f} MiB = {61 * PICTURE / 2**20:.1f} MiB a stream, "
    f"{3 * 61 * PICTURE / 2**20:.1f} MiB for the 3 (reached when the ladder falls behind real time)",
    "    ingest → pipeline: 1024 packets a stream (limits.packet_queue; the publisher waits when full)",
    "    DVR storage: 1024 jobs (segments and index appends; the bytes are the live window's, shared)",
    "    archive: 100,000 uploads (an object name and a file path each, no media bytes: < 30 MiB)",
]


def table(samples):
    rows = ["| " + " | ".join(c for c, _ in COLUMNS) + " |",
            "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    for s in samples:
        rows.append("| " + " | ".join(f(s) for _, f in COLUMNS) + " |")
    return "\n".join(rows)


def trend(samples, key):
    # The first sample is taken as the pollers start: a baseline, not part of the trend.
    vals = [s[key] for s in samples[1:] if s[key] is not None and s.get("phase", "on") == "on"]
    if len(vals) < 2:
        return None
    k = max(1, len(vals) // 10)
    first, last = sum(vals[:k]) / k, sum(vals[-k:]) / k
    return first, last, k


def svg_plot(samples, path, title, marks=()):
    """Stacked panels (RSS, fds, threads, DVR) over one time axis; plain SVG."""
    panels = [("RSS (MiB)", "rss", "#d62728"), ("open fds", "fds", "#1f77b4"),
              ("threads", "threads", "#2ca02c"), ("DVR on disk (MiB)", "dvr", "#9467bd")]
    W, left, right, top, ph, gap = 900, 80, 30, 50, 150, 45
    H = top + len(panels) * (ph + gap) + 20
    pw = W - left - right
    ts = [s["t"] / 60 for s in samples]
    tmax = max(ts[-1] if ts else 1, 1e-9)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16">{title}</text>']

    def nice(lo, hi, ticks=5):
        if hi - lo < 1e-9:
            lo, hi = lo - 1, hi + 1
        span = hi - lo
        step = 10 ** int(f"{span / 4:e}".split("e")[1])
        for m in (1, 2, 5, 10):
            if span / (step * m) <= ticks:
                step *= m
                break
        import math
        lo2 = math.floor(lo / step) * step
        hi2 = math.ceil(hi / step) * step
        return lo2, hi2, step

    for n, (label, key, color) in enumerate(panels):
        y0 = top + n * (ph + gap)
        pts = [(t, s[key]) for t, s in zip(ts, samples)
               if s[key] is not None and s[key] == s[key]]
        out.append(f'<rect x="{left}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{left}" y="{y0 - 6}" font-weight="bold">{label}</text>')
        if not pts:
            out.append(f'<text x="{left + pw / 2}" y="{y0 + ph / 2}" text-anchor="middle">no data</text>')
            continue
        vals = [v for _, v in pts]
        lo, hi, step = nice(0.0 if key == "dvr" else min(vals), max(vals))

        def X(t):
            return left + pw * t / tmax

        def Y(v):
            return y0 + ph - ph * (v - lo) / (hi - lo)

        v = lo
        while v <= hi + step / 2:
            y = Y(v)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#888"/>')
            out.append(f'<text x="{left - 7}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
            v += step
        _, _, tstep = nice(0, tmax, 8)
        t = 0.0
        while t <= tmax + 1e-9:
            x = X(t)
            out.append(f'<line x1="{x:.1f}" y1="{y0 + ph}" x2="{x:.1f}" y2="{y0 + ph + 4}" stroke="#888"/>')
            out.append(f'<text x="{x:.1f}" y="{y0 + ph + 16}" text-anchor="middle">{t:g}</text>')
            t += tstep
        out.append(f'<text x="{left + pw - 24}" y="{y0 + ph + 30}" text-anchor="end" fill="#555">minutes</text>')
        for mt in marks:
            x = X(mt / 60)
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + ph}" stroke="#999" stroke-dasharray="4,3"/>')
            if n == 0:
                out.append(f'<text x="{x + 3:.1f}" y="{y0 + 26}" fill="#777">SIGHUP</text>')
        poly = " ".join(f"{X(t):.1f},{Y(v):.1f}" for t, v in pts)
        out.append(f'<polyline points="{poly}" fill="none" stroke="{color}" stroke-width="2"/>')
        for t, v in pts if len(pts) <= 60 else []:
            out.append(f'<circle cx="{X(t):.1f}" cy="{Y(v):.1f}" r="2.5" fill="{color}"/>')
        out.append(f'<text x="{left + pw}" y="{y0 - 6}" text-anchor="end" fill="{color}">'
                   f'min {min(vals):.1f} · max {max(vals):.1f} · last {vals[-1]:.1f}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, required=True, help="how long (fractional: 0.1 = 6 min)")
    ap.add_argument("--out", required=True, help="output directory (soak.md, soak.svg, work/)")
    ap.add_argument("--bin", required=True, help="the ladderd binary")
    ap.add_argument("--sample-secs", type=float, default=30.0)
    ap.add_argument("--drop-every", type=float, default=60.0, help="publisher drop period, s (0: never)")
    ap.add_argument("--drop-gap", type=float, default=3.0, help="seconds a dropped publisher stays off")
    ap.add_argument("--sighup-every", type=float, default=600.0, help="s between SIGHUPs (0: never)")
    ap.add_argument("--hls-pollers", type=int, default=50)
    ap.add_argument("--dash-pollers", type=int, default=10)
    ap.add_argument("--client-ips", type=int, default=4, help="pollers spread over 127.0.0.2..")
    ap.add_argument("--rendition", default="360p30", help="the rendition the pollers read")
    ap.add_argument("--archive", choices=["auto", "garage", "file", "off"], default="auto",
                    help="auto: Garage if a garage binary is found, else off")
    ap.add_argument("--dvr-window", type=float, default=600.0)
    ap.add_argument("--after-secs", type=float, default=300.0,
                    help="after the load: seconds the demo plays on alone, sampled (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the DVR and archive data")
    a = ap.parse_args()

    out = os.path.abspath(a.out)
    work = os.path.join(out, "work")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    procs = Procs(os.path.join(work, "pids"))
    duration = a.hours * 3600
    stats = Stats()
    samples = []
    notes = []
    died = None
    stop_rc = None
    pubs = []
    threads = []
    stop_reason = "time up"
    load_end = None

    def on_signal(sig, _frame):
        nonlocal stop_reason
        if not STOP.is_set():
            stop_reason = f"signal {signal.Signals(sig).name}"
            log(f"{signal.Signals(sig).name}: stopping, report follows")
        STOP.set()
        LOAD_STOP.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ladderd = None
    version = "?"
    archive_desc = "?"
    sighups = []
    try:
        # The binary is copied so a rebuild during the soak does not touch it.
        binary = os.path.join(work, "ladderd")
        shutil.copy2(a.bin, binary)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

        # The input, once: 20 s of 360p30 (keyint 60) + AAC, published with -c copy.
        media = os.path.join(work, "input.mp4")
        log("making the 20 s input with ffmpeg")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
             "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart", media],
            check=True, timeout=300)

        # Archive.
        archive_toml = ""
        archive_desc = "off"
        garage = find_garage() if a.archive in ("auto", "garage") else None
        if a.archive == "garage" and garage is None:
            raise SystemExit("--archive garage: no garage binary (~/.cargo/bin/garage, LADDERD_GARAGE, PATH)")
        if garage:
            endpoint, kid, secret = start_garage(procs, garage, work)
            creds = os.path.join(work, "archive-credentials.toml")
            with open(creds, "w") as f:
                f.write(f'access_key_id = "{kid}"\nsecret_access_key = "{secret}"\n')
            archive_toml = (f'[archive]\nurl = "s3://ladderd/live"\nendpoint = "{endpoint}"\n'
                            f'region = "garage"\ncredentials_file = "{creds}"\n')
            archive_desc = f"Garage ({garage}) at {endpoint}, s3://ladderd/live"
        elif a.archive == "file":
            adir = os.path.join(work, "archive")
            os.makedirs(adir)
            archive_toml = f'[archive]\nurl = "file://{adir}"\n'
            archive_desc = f"file://{adir} (no Garage)"
        else:
            archive_desc = ("OFF: no garage binary found (~/.cargo/bin/garage, LADDERD_GARAGE, PATH); "
                            "the archive was not exercised" if a.archive == "auto" else "off (--archive off)")
        log(f"archive: {archive_desc}")

        dvr = os.path.join(work, "dvr")
        os.makedirs(dvr)
        cfg = os.path.join(work, "ladderd.toml")
        with open(cfg, "w") as f:
            f.write(
                "# soak (scripts/soak.py)\n[demo]\nwidth = 640\nheight = 360\n\n"
                f'[dvr]\ndir = "{dvr}"\nwindow_secs = {a.dvr_window}\n\n'
                "[ingest]\nallow_any_key = true\n\n" + archive_toml)
        rtmp, http_port, srt = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        ladder_log = os.path.join(work, "ladderd.log")
        env = dict(os.environ, LADDERD_LOG="info", NO_COLOR="1")
        ladderd = procs.spawn("ladderd", [
            binary, "--config", cfg, "--rtmp-listen", f"127.0.0.1:{rtmp}",
            "--http-listen", f"127.0.0.1:{http_port}", "--srt-listen", f"127.0.0.1:{srt}",
            "serve", "--demo"], stderr=open(ladder_log, "ab"), env=env)
        log(f"ladderd pid {ladderd.pid}: rtmp :{rtmp} http :{http_port} srt :{srt}, log {ladder_log}")
        deadline = time.monotonic() + 60
        while True:
            if ladderd.poll() is not None:
                raise RuntimeError(f"ladderd exited during start-up ({ladderd.returncode}); see {ladder_log}")
            try:
                if Client(http_port, timeout=2).get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ladderd did not answer /healthz within 60 s")
            time.sleep(0.2)

        # Publishers: RTMP primary (dropped each minute), its backup (throughout),
        # SRT (dropped each minute, 30 s after the RTMP one).
        rtmp_name, srt_name = "soakrtmp", "soaksrt"
        base = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", media, "-c", "copy"]
        rurl = f"rtmp://127.0.0.1:{rtmp}/live/{rtmp_name}"
        surl = f"srt://127.0.0.1:{srt}?streamid=#!::r=live/{srt_name},m=publish&pkt_size=1316"
        pubs = [
            Publisher(procs, "rtmp-primary", base + ["-f", "flv", rurl + "?key=x"],
                      os.path.join(work, "ffmpeg-rtmp-primary.log"), a.drop_every, a.drop_every, a.drop_gap),
            Publisher(procs, "rtmp-backup", base + ["-f", "flv", rurl + "?key=x&role=backup"],
                      os.path.join(work, "ffmpeg-rtmp-backup.log"), 0, 0, 0),
            Publisher(procs, "srt", base + ["-f", "mpegts", surl],
                      os.path.join(work, "ffmpeg-srt.log"), a.drop_every, a.drop_every / 2 + a.drop_every, a.drop_gap),
        ]
        pubs[0].run()
        time.sleep(1.0)
        pubs[1].run()
        pubs[2].run()

        streams = ["demo", rtmp_name, srt_name]
        log("waiting for every stream's master playlist")
        deadline = time.monotonic() + 90
        waiting = set(streams)
        while waiting and not STOP.is_set():
            for s in list(waiting):
                try:
                    st, body = Client(http_port, timeout=10).get(f"/live/{s}/master.m3u8")
                    if st == 200 and a.rendition.encode() in body:
                        waiting.discard(s)
                except OSError:
                    pass
            if ladderd.poll() is not None:
                raise RuntimeError(f"ladderd exited ({ladderd.returncode}); see {ladder_log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"streams not live within 90 s: {sorted(waiting)}")
            time.sleep(0.5)

        for i in range(a.hls_pollers):
            src = f"127.0.0.{2 + i % max(1, a.client_ips)}"
            threads.append(threading.Thread(target=ll_hls_poller, daemon=True, args=(
                i, http_port, src, streams[i % len(streams)], a.rendition, stats)))
        for i in range(a.dash_pollers):
            src = f"127.0.0.{2 + i % max(1, a.client_ips)}"
            threads.append(threading.Thread(target=dash_poller, daemon=True, args=(
                i, http_port, src, streams[i % len(streams)], a.rendition, stats)))
        for t in threads:
            t.start()
        log(f"{a.hls_pollers} LL-HLS + {a.dash_pollers} DASH pollers on {streams}, "
            f"rendition {a.rendition}; running {hms(duration)}")

        start = now()
        end = start + duration
        hup_every = a.sighup_every
        next_hup = start + hup_every if hup_every > 0 else None
        if hup_every > 0 and duration < 2 * hup_every:
            next_hup = start + duration / 2  # short runs get one, at half time
            notes.append(f"run shorter than 2 × {hup_every:g} s: one SIGHUP at half time")
        logc = LogCounter(ladder_log)
        last_cpu = (time.monotonic(), proc_cpu_secs(ladderd.pid))

        phase = "on"

        def sample():
            nonlocal last_cpu
            st = proc_status(ladderd.pid)
            fds = len(os.listdir(f"/proc/{ladderd.pid}/fd"))
            cpu_now = (time.monotonic(), proc_cpu_secs(ladderd.pid))
            cpu = 100 * (cpu_now[1] - last_cpu[1]) / max(1e-9, cpu_now[0] - last_cpu[0])
            last_cpu = cpu_now
            try:
                m = scrape(http_port)
            except Exception as e:  # noqa: BLE001
                m = {}
                notes.append(f"{hms(now() - start)}: /metrics failed: {error_kind(e)}")
            logc.update()
            pok, perr = stats.totals()
            archive_on = bool(archive_toml)
            s = {
                "t": now() - start,
                "rss": int(st["VmRSS"].split()[0]) / 1024,
                "fds": fds,
                "threads": int(st["Threads"]),
                "cpu": cpu,
                "dvr": du_mib(dvr),
                "lag": m.get("ladderd_archive_lag_seconds") if archive_on else None,
                "pending": m.get("ladderd_archive_pending") if archive_on else None,
                "warn": logc.counts["WARN"],
                "error": logc.counts["ERROR"],
                "pok": pok,
                "perr": perr,
                "waiters": m.get("ladderd_http_blocked_waiters"),
                "switches": m.get("ladderd_input_switches_total"),
                "phase": phase,
                "recordings": m.get("ladderd_recordings"),
                "metrics": m,
            }
            samples.append(s)
            log(" | ".join(f"{c} {f(s)}" for c, f in COLUMNS))

        sample()
        next_sample = start + a.sample_secs
        while not STOP.is_set() and now() < end:
            if ladderd.poll() is not None:
                died = ladderd.returncode
                log(f"LADDERD DIED (exit {died}); stopping")
                break
            if next_hup is not None and now() >= next_hup:
                os.kill(ladderd.pid, signal.SIGHUP)
                sighups.append(now() - start)
                log("SIGHUP sent")
                next_hup = next_hup + hup_every if hup_every and duration >= 2 * hup_every else None
            if now() >= next_sample:
                try:
                    sample()
                except FileNotFoundError:
                    pass  # died between the checks: caught above next round
                next_sample += a.sample_secs
            STOP.wait(0.25)
        if died is None and ladderd.poll() is None and not STOP.is_set():
            sample()  # the last one, still under load (not after a Ctrl-C: pollers are going)
            load_end = samples[-1]
            if a.after_secs > 0:
                # Memory after load: pollers and publishers stop (the RTMP and SRT
                # streams end), the demo plays on; does RSS come back down?
                log(f"load off: pollers and publishers stop, the demo plays on for {a.after_secs:g} s")
                LOAD_STOP.set()
                for t in threads:
                    t.join(timeout=20)
                for p in pubs:
                    p.stop()
                phase = "off"
                after_end = now() + a.after_secs
                next_sample = now() + a.sample_secs
                while not STOP.is_set() and now() < after_end:
                    if ladderd.poll() is not None:
                        died = ladderd.returncode
                        log(f"LADDERD DIED (exit {died}) after the load; stopping")
                        break
                    if now() >= next_sample:
                        try:
                            sample()
                        except FileNotFoundError:
                            pass
                        next_sample += a.sample_secs
                    STOP.wait(0.25)
    except Exception as e:  # noqa: BLE001
        notes.append(f"soak aborted: {e}")
        log(f"ABORTED: {e}")
        stop_reason = f"aborted: {e}"
    finally:
        STOP.set()
        LOAD_STOP.set()
        for t in threads:
            t.join(timeout=20)
        for p in pubs:
            p.stop()
        if ladderd is not None:
            if ladderd.poll() is not None:
                if died is None and not stop_reason.startswith("aborted"):
                    died = ladderd.returncode
            else:
                t_stop = time.monotonic()
                stop_rc = procs.kill(ladderd, signal.SIGTERM, wait=15.0)
                notes.append(f"ladderd stopped by SIGTERM: exit {stop_rc} in {time.monotonic() - t_stop:.1f} s")
            procs.forget(ladderd)
        procs.kill_all()
        if not a.keep:
            for d in ("dvr", "garage", "archive", "ladderd", "input.mp4"):
                p = os.path.join(work, d)
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.exists(p):
                    os.remove(p)

    # ------------------------------------------------------------ the report
    if ladderd is not None and os.path.exists(os.path.join(work, "ladderd.log")):
        logc = LogCounter(os.path.join(work, "ladderd.log"))
        logc.update()
    else:
        logc = None
    lines = [f"# ladderd soak: {len(samples)} samples over {hms(samples[-1]['t']) if samples else '0:00:00'}", ""]
    if ladderd is not None:
        lines += [
            f"- binary: `{a.bin}` ({version}), demo 640x360@30 + RTMP "
            f"`soakrtmp` (primary dropped every {a.drop_every:g} s, {a.drop_gap:g} s off; backup "
            f"throughout) + SRT `soaksrt` (dropped every {a.drop_every:g} s, offset half a period)",
            f"- {a.hls_pollers} LL-HLS pollers (blocking reload + the part) and {a.dash_pollers} DASH "
            f"pollers (MPD + newest segment every 2 s) on `{a.rendition}`, spread over the 3 streams and "
            f"{a.client_ips} client addresses",
            f"- DVR window {a.dvr_window:g} s; archive: {archive_desc}",
            f"- stopped: {stop_reason}",
        ]
    lines += ["", table(samples), ""]
    summary = []
    if samples:
        rss = [s["rss"] for s in samples]
        summary.append(f"RSS MiB: min {min(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}")
        for key, label in (("fds", "open fds"), ("threads", "threads"), ("rss", "RSS MiB")):
            tr = trend(samples, key)
            if tr is None:
                summary.append(f"{label}: too few samples for a trend")
                continue
            first, last, k = tr
            grew = last > first * 1.05 + 1
            summary.append(f"{label}: first 10 % after the start sample ({k} samples) mean {first:.1f}, last 10 % mean "
                           f"{last:.1f}: {'GREW' if grew else 'no growth'} ({last - first:+.1f}; "
                           f"growth = more than 5 % + 1)")
    if samples and load_end is not None and samples[-1] is not load_end:
        last = samples[-1]
        summary.append(
            f"after the load ({hms(last['t'] - load_end['t'])} of the demo alone): RSS {load_end['rss']:.1f} → "
            f"{last['rss']:.1f} MiB ({last['rss'] - load_end['rss']:+.1f}), fds {load_end['fds']} → {last['fds']}, "
            f"threads {load_end['threads']} → {last['threads']}")
    summary += QUEUE_BOUNDS
    for p in pubs:
        summary.append(f"publisher {p.name}: {p.drops} drops, {p.unexpected_exits} exits by itself"
                       + (f" ({dict(p.exit_notes)})" if p.exit_notes else ""))
    summary.append(f"SIGHUPs sent: {len(sighups)}"
                   + (f" at {', '.join(hms(t) for t in sighups)}" if sighups else ""))
    if samples:
        m = samples[-1]["metrics"]
        sw = {k: v for k, v in m.items() if k.startswith("ladderd_input_switches_total{") and v}
        if sw:
            summary.append("input switches: " + ", ".join(f"{k[len('ladderd_input_switches_total'):]} {v:g}"
                                                          for k, v in sorted(sw.items())))
        rl = {k: v for k, v in m.items() if k.startswith("ladderd_reloads_total{") and v}
        if rl:
            summary.append("reloads: " + ", ".join(f"{k[len('ladderd_reloads_total'):]} {v:g}" for k, v in sorted(rl.items())))
        for name in ("ladderd_dvr_write_errors_total", "ladderd_archive_errors_total",
                     "ladderd_archive_uploads_total", "ladderd_archive_dropped_total",
                     "ladderd_recordings_made_total"):
            if name in m:
                summary.append(f"{name}: {m[name]:g}")
    with stats.lock:
        summary.append("poller requests ok: " + (", ".join(f"{k} {v}" for k, v in sorted(stats.ok.items())) or "none"))
        summary.append("poller errors by kind: " + (", ".join(f"{k} {v}" for k, v in stats.err.most_common()) or "none"))
    if logc is not None:
        summary.append(f"ladderd log: {logc.counts['WARN']} WARN, {logc.counts['ERROR']} ERROR lines")
        for k, v in logc.kinds.most_common(15):
            summary.append(f"    {v:5d} × {k}")
    summary += notes
    if died is not None:
        summary.append(f"LADDERD DIED during the soak: exit {died}")
    lines += ["```", *summary, "```", ""]
    report = "\n".join(lines)
    print()
    print(report)
    with open(os.path.join(out, "soak.md"), "w") as f:
        f.write(report)
    with open(os.path.join(out, "soak.json"), "w") as f:
        keep = ("ladderd_archive_lag_seconds", "ladderd_archive_pending", "ladderd_http_connections",
                "ladderd_streams_live", "ladderd_dvr_bytes", "ladderd_http_blocked_waiters")
        json.dump([{**{k: v for k, v in s.items() if k != "metrics"},
                    "metrics": {k: v for k, v in s["metrics"].items() if k in keep}} for s in samples], f)
    if samples:
        svg_plot(samples, os.path.join(out, "soak.svg"),
                 f"ladderd soak: {hms(samples[-1]['t'])}, RTMP+SRT drops every {a.drop_every:g} s, "
                 f"{a.hls_pollers} LL-HLS + {a.dash_pollers} DASH pollers", sighups)
        print(f"wrote {out}/soak.md and {out}/soak.svg")
    if died is not None:
        return 1
    if stop_rc not in (0, None):
        return 3
    if stop_reason.startswith("aborted"):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

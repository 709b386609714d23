"""Tar archives for the extraction tests, built from a spec of entries by three real writers:

* GNU tar on a real tree (`tar --format=v7|ustar|gnu|pax -cf -`),
* Python's tarfile (USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT), which writes whatever it is given
  (names with '..', absolute names, links anywhere): the hostile archives come from here,
* Go's archive/tar (tests/wrapper/gotar), the writer Tilt and kubectl use: a directory walked as
  Tilt's ArchiveBuilder walks it, or as `kubectl cp` does, and explicit headers.

Plus raw 512-byte headers (`header`) for what no writer produces: bad checksums, base-256 and
lying pax lengths.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat as stat_module
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .harness import IS_ROOT

NS = 1_000_000_000
# Fixed times in the past, one with a nanosecond fraction: a restored mtime is told from "now".
T0 = 1_600_000_000 * NS
T1 = 1_500_000_000 * NS + 123_456_789
GNU_TAR = "/usr/bin/tar"
GOTAR_SOURCE = Path(__file__).with_name("gotar")


@dataclass(frozen=True)
class File:
    name: str
    content: bytes = b""
    mode: int = 0o644
    mtime_ns: int = T0
    uid: int | None = None  # None: the writer's default (the owner of the tree, or 0)
    gid: int | None = None


@dataclass(frozen=True)
class Dir:
    name: str
    mode: int = 0o755
    mtime_ns: int = T0


@dataclass(frozen=True)
class Symlink:
    name: str
    target: str
    mtime_ns: int = T0


@dataclass(frozen=True)
class Hardlink:
    name: str
    target: str  # an earlier member's name


@dataclass(frozen=True)
class Fifo:
    name: str
    mode: int = 0o644
    mtime_ns: int = T0


Entry = File | Dir | Symlink | Hardlink | Fifo


def rich(prefix: str = "app") -> list[Entry]:
    """Everything a sync carries: every type, modes, long and non-ASCII names, a fractional mtime."""
    long_component = "L" * 120  # a name over 100 bytes
    deep = "/".join(["d" * 60] * 4)  # a path over 255 bytes
    p = prefix
    return [
        Dir(p, 0o755, T0),
        File(f"{p}/main.py", b"print('hello')\n", 0o644, T1),
        File(f"{p}/run.sh", b"#!/bin/sh\necho run\n", 0o755, T0 + 7 * NS),
        File(f"{p}/secret", b"s3cret\n", 0o600, T0),
        File(f"{p}/empty-file", b"", 0o640, T0),
        File(f"{p}/big.bin", bytes(range(256)) * 1200 + b"tail", 0o644, T0),  # several 10 KiB records
        File(f"{p}/setuid", b"#!/bin/sh\n", 0o4755, T0),
        File(f"{p}/owned", b"owned\n", 0o644, T0, uid=1234, gid=5678),
        Dir(f"{p}/empty", 0o700, T0 + 3 * NS),
        Dir(f"{p}/sub", 0o750, T1),
        Dir(f"{p}/sub/deeper", 0o755, T0),
        File(f"{p}/sub/deeper/file", b"deep\n", 0o644, T0),
        Symlink(f"{p}/link", "main.py", T0),
        Symlink(f"{p}/dirlink", "sub/deeper", T0),
        Symlink(f"{p}/abslink", "/nonexistent/target", T0),
        Hardlink(f"{p}/hard", f"{p}/main.py"),
        Hardlink(f"{p}/hard-to-symlink", f"{p}/link"),
        Dir(f"{p}/read-only", 0o555, T0),  # filled before its mode is set: metadata comes at the end
        File(f"{p}/read-only/inside", b"inside\n", 0o444, T0),
        Fifo(f"{p}/fifo", 0o644, T0),
        File(f"{p}/{long_component}", b"long\n", 0o644, T0),
        Dir(f"{p}/{deep}", 0o755, T0),
        File(f"{p}/{deep}/file-in-a-path-over-255-bytes", b"deeper\n", 0o644, T0),
        Symlink(f"{p}/longlink", "t" * 150, T0),
        File(f"{p}/h\u00e9llo-w\u00f6rld-\u65e5\u672c.txt", "non-ASCII\n".encode(), 0o644, T0),
    ]


def fits(entries: list[Entry], fmt: str) -> list[Entry]:
    """The entries a format can hold: v7 has no fifos and 99-byte names, ustar 255 (split at a '/')."""
    def name_ok(name: str) -> bool:
        raw = name.encode()
        if fmt == "v7":
            return len(raw) <= 99
        if fmt == "ustar":
            if len(raw) <= 100:
                return True
            cut = raw.rfind(b"/", 0, 156)
            return 0 < cut and len(raw) - cut - 1 <= 100
        return True

    kept = []
    for e in entries:
        if not name_ok(e.name + ("/" if isinstance(e, Dir) and fmt == "v7" else "")):
            continue
        if isinstance(e, (Symlink, Hardlink)) and fmt in ("v7", "ustar") and len(e.target.encode()) > 100:
            continue
        if isinstance(e, Fifo) and fmt == "v7":
            continue
        kept.append(e)
    names = {e.name for e in kept}
    return [e for e in kept if not isinstance(e, Hardlink) or e.target in names]


# --- a real tree -----------------------------------------------------------------------------

def materialize(entries: list[Entry], root: Path) -> None:
    """Create the entries under root (parents as needed), then their times, directories last."""
    for e in entries:
        path = root / e.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(e, Dir):
            path.mkdir(exist_ok=True)
        elif isinstance(e, File):
            path.write_bytes(e.content)
            if IS_ROOT and (e.uid is not None or e.gid is not None):
                os.chown(path, -1 if e.uid is None else e.uid, -1 if e.gid is None else e.gid)
            path.chmod(e.mode)  # after chown, which clears setuid
        elif isinstance(e, Symlink):
            os.symlink(e.target, path)
        elif isinstance(e, Hardlink):
            os.link(root / e.target, path)
        elif isinstance(e, Fifo):
            os.mkfifo(path)
            path.chmod(e.mode)
    for e in entries:
        if isinstance(e, (File, Symlink, Fifo)):
            os.utime(root / e.name, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
    for e in sorted((e for e in entries if isinstance(e, Dir)), key=lambda e: -e.name.count("/")):
        (root / e.name).chmod(e.mode)
        os.utime(root / e.name, ns=(e.mtime_ns, e.mtime_ns))


def gnu(entries: list[Entry], fmt: str) -> bytes:
    """GNU tar's archive of the entries' tree, members in spec order, numeric owners."""
    with tempfile.TemporaryDirectory(prefix="archive-src-") as tmp:
        materialize(entries, Path(tmp))
        result = subprocess.run(
            [GNU_TAR, f"--format={fmt}", "--numeric-owner", "--no-recursion", "-C", tmp, "-cf", "-", "--",
             *[e.name for e in entries]],
            capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"}, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"tar --format={fmt} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout


# --- Python's tarfile ------------------------------------------------------------------------

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}


def python(entries: list[Entry], fmt: str) -> bytes:
    """tarfile's archive of the entries, written as given (no name checks): uid/gid 0, no names."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=FORMATS[fmt]) as archive:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.uname = info.gname = ""
            info.uid = getattr(e, "uid", None) or 0
            info.gid = getattr(e, "gid", None) or 0
            mtime = getattr(e, "mtime_ns", T0)
            info.mtime = mtime // NS
            if fmt == "pax" and mtime % NS:
                sign, magnitude = "-" if mtime < 0 else "", abs(mtime)
                info.pax_headers["mtime"] = f"{sign}{magnitude // NS}.{magnitude % NS:09d}"
            data = None
            if isinstance(e, File):
                info.type, info.mode, info.size, data = tarfile.REGTYPE, e.mode, len(e.content), io.BytesIO(e.content)
            elif isinstance(e, Dir):
                info.type, info.mode = tarfile.DIRTYPE, e.mode
            elif isinstance(e, Symlink):
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, e.target
            elif isinstance(e, Hardlink):
                info.type, info.mode, info.linkname = tarfile.LNKTYPE, 0o644, e.target
            elif isinstance(e, Fifo):
                info.type, info.mode = tarfile.FIFOTYPE, e.mode
            archive.addfile(info, data)
    return buffer.getvalue()


# --- Go's archive/tar ------------------------------------------------------------------------

def build_gotar(out_dir: Path) -> Path:
    """`go build` tests/wrapper/gotar (standard library only) into out_dir; returns the binary."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": "", "GOPROXY": "off",
           "CGO_ENABLED": "0"}
    if not env.get("GOCACHE"):
        if env.get("HOME"):
            env["GOCACHE"] = str(Path(env["HOME"]) / ".cache" / "go-build")
        else:
            env["GOCACHE"] = str(Path(__file__).resolve().parents[2] / "build" / "go-cache")
    binary = out_dir / "gotar"
    result = subprocess.run([go, "build", "-C", str(GOTAR_SOURCE), "-o", str(binary), "."],
                            capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"go build tests/wrapper/gotar failed:\n{result.stderr}")
    return binary


def _gotar(gotar: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([str(gotar), *args], input=stdin, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"gotar {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def go_tilt(gotar: Path, entries: list[Entry], src: str = "app", dest: str = "/app") -> bytes:
    """The archive Tilt's live_update sends for a sync of the entries' directory `src` to `dest`."""
    with tempfile.TemporaryDirectory(prefix="archive-src-") as tmp:
        materialize(entries, Path(tmp))
        return _gotar(gotar, "tilt", str(Path(tmp) / src), dest)


def go_kubectl(gotar: Path, entries: list[Entry], src: str = "app", dest: str = "dst") -> bytes:
    """What `kubectl cp SRC pod:DIR/dest` sends (the pod runs `tar -xmf - -C DIR`) for the
    entries' directory `src` as SRC."""
    with tempfile.TemporaryDirectory(prefix="archive-src-") as tmp:
        materialize(entries, Path(tmp))
        return _gotar(gotar, "kubectl", str(Path(tmp) / src), dest)


def go_headers(gotar: Path, entries: list[Entry], fmt: str = "", pax: dict[str, dict[str, str]] | None = None) -> bytes:
    """Go's archive of explicit headers; fmt "" lets Go choose (USTAR, else PAX, else GNU)."""
    specs = []
    for e in entries:
        kind = {File: "file", Dir: "dir", Symlink: "symlink", Hardlink: "hardlink", Fifo: "fifo"}[type(e)]
        specs.append({
            "name": e.name + ("/" if isinstance(e, Dir) else ""), "type": kind,
            "linkname": getattr(e, "target", ""), "mode": getattr(e, "mode", 0o777),
            "uid": getattr(e, "uid", None) or 0, "gid": getattr(e, "gid", None) or 0,
            "mtime_ns": getattr(e, "mtime_ns", T0),
            "content": base64.b64encode(getattr(e, "content", b"")).decode(), "format": fmt,
            "pax": (pax or {}).get(e.name),
        })
    return _gotar(gotar, "headers", stdin=json.dumps(specs).encode())


# --- raw headers -----------------------------------------------------------------------------

BLOCK = 512
END = bytes(2 * BLOCK)


def octal(value: int, width: int) -> bytes:
    return (b"%0*o" % (width - 1, value)) + b"\0"


def base256(value: int, width: int) -> bytes:
    """GNU's binary numbers: 0x80 then big-endian (two's complement for negatives)."""
    raw = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:] if value >= 0 else raw


def checksum(block: bytes) -> int:
    return sum(block[:148]) + 8 * 32 + sum(block[156:BLOCK])


def header(name: bytes | str, size: int = 0, typeflag: bytes = b"0", linkname: bytes | str = b"",
           mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = T0 // NS, magic: str = "ustar",
           prefix: bytes = b"", numbers: dict[str, bytes] | None = None, fix_checksum: bool = True) -> bytes:
    """One 512-byte header. magic: "ustar" (POSIX), "gnu" (GNU's "ustar  \\0"), "v7" (none).
    `numbers` puts raw bytes in a numeric field by name: mode uid gid size mtime."""
    name = name.encode() if isinstance(name, str) else name
    linkname = linkname.encode() if isinstance(linkname, str) else linkname
    fields = {"mode": octal(mode, 8), "uid": octal(uid, 8), "gid": octal(gid, 8), "size": octal(size, 12),
              "mtime": octal(mtime, 12)}
    fields.update(numbers or {})
    block = bytearray(BLOCK)
    block[0:100] = name[:100].ljust(100, b"\0")
    for key, start, width in (("mode", 100, 8), ("uid", 108, 8), ("gid", 116, 8), ("size", 124, 12),
                              ("mtime", 136, 12)):
        block[start:start + width] = fields[key][:width].ljust(width, b"\0")
    block[156:157] = typeflag
    block[157:257] = linkname[:100].ljust(100, b"\0")
    if magic == "ustar":
        block[257:265] = b"ustar\x0000"
    elif magic == "gnu":
        block[257:265] = b"ustar  \x00"
    if magic != "v7":
        block[345:500] = prefix[:155].ljust(155, b"\0")
    if fix_checksum:
        block[148:156] = b"%06o\0 " % checksum(bytes(block))
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes | str, content: bytes = b"", **kwargs) -> bytes:
    """A raw header and its padded content."""
    return header(name, size=len(content), **kwargs) + pad(content)


def pax_record(key: str, value: bytes | str, length: int | None = None) -> bytes:
    """'LEN key=value\\n' with LEN right, or the given (lying) LEN."""
    value = value.encode() if isinstance(value, str) else value
    body = b" " + key.encode() + b"=" + value + b"\n"
    if length is None:
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
    return str(length).encode() + body


def pax(records: bytes, typeflag: bytes = b"x", size: int | None = None) -> bytes:
    """A pax extended header member ('x', or 'g' global) holding `records`."""
    return header(b"PaxHeaders/x", size=len(records) if size is None else size, typeflag=typeflag) + pad(records)


def gnu_long(kind: bytes, value: bytes, size: int | None = None) -> bytes:
    """A GNU ././@LongLink member: kind b"L" (name) or b"K" (link name)."""
    value = value + b"\0"
    return header(b"././@LongLink", size=len(value) if size is None else size, typeflag=kind, magic="gnu") + pad(value)


# --- trees -----------------------------------------------------------------------------------

def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """Every path under root (root itself as "."), by lstat: never following a symlink.

    Each entry: kind, mode, uid, gid, mtime_ns, ctime_ns, ino, nlink, content (regular files),
    target (symlinks) and link_group: the first path (sorted) of a hard-link set inside root."""
    tree: dict[str, dict] = {}
    by_inode: dict[tuple[int, int], list[str]] = {}

    def record(path: str, rel: str) -> None:
        st = os.lstat(path)
        kind = {stat_module.S_IFREG: "file", stat_module.S_IFDIR: "dir", stat_module.S_IFLNK: "symlink",
                stat_module.S_IFIFO: "fifo"}.get(stat_module.S_IFMT(st.st_mode), "other")
        entry = {"kind": kind, "mode": stat_module.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                 "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino, "nlink": st.st_nlink}
        if kind == "file":
            with open(path, "rb") as f:
                entry["content"] = f.read()
        elif kind == "symlink":
            entry["target"] = os.readlink(path)
        tree[rel] = entry
        if kind != "dir":
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(rel)

    record(str(root), ".")
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_dir, d)) not in skip]
        for name in dirs + files:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel not in skip:
                record(os.path.join(directory, name), rel)
    for paths in by_inode.values():
        for rel in paths:
            tree[rel]["link_group"] = min(paths) if len(paths) > 1 else None
    return tree


def differences(expected: dict[str, dict], got: dict[str, dict], since_ns: int,
                keys=("kind", "mode", "uid", "gid", "content", "target", "link_group")) -> list[str]:
    """How `got` differs from `expected` (an oracle's tree) in what an extraction decides.

    mtime: equal when the oracle's is from before `since_ns` (restored from the archive), else
    both must be from after it (the extraction's own time: -m, directories tar made itself)."""
    problems = []
    for rel in sorted(set(expected) | set(got)):
        if rel not in got:
            problems.append(f"{rel}: missing (expected {_short(expected[rel])})")
            continue
        if rel not in expected:
            problems.append(f"{rel}: unexpected {_short(got[rel])}")
            continue
        e, g = expected[rel], got[rel]
        for key in keys:
            if e.get(key) != g.get(key):
                problems.append(f"{rel}: {key} {_value(key, g.get(key))}, expected {_value(key, e.get(key))}")
        recent = since_ns - 2 * NS  # file system timestamps are coarse and may lag the clock a little
        if e["mtime_ns"] < recent:
            if g["mtime_ns"] != e["mtime_ns"]:
                problems.append(f"{rel}: mtime_ns {g['mtime_ns']}, expected {e['mtime_ns']} (from the archive)")
        elif g["mtime_ns"] < recent:
            problems.append(f"{rel}: mtime_ns {g['mtime_ns']} is from the archive, expected the time of extraction")
    return problems


def _value(key, value):
    if key == "mode" and value is not None:
        return oct(value)
    if key == "content" and value is not None and len(value) > 40:
        return f"<{len(value)} bytes {value[:20]!r}...>"
    return repr(value)


def _short(entry: dict) -> str:
    return f"{entry['kind']} {oct(entry['mode'])}"

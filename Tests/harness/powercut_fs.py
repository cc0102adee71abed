#!/usr/bin/env python3
"""A file system that forgets what was not fsynced, for power-cut tests (in the spirit of LazyFS).

    powercut_fs.py BACKING MOUNTPOINT

Mounts MOUNTPOINT (FUSE, through fusepy and libfuse2) as a view of the directory BACKING. Reads see
everything written; but written bytes reach BACKING only when the file is fsynced (fsync or
fdatasync). Until then they live in this process's memory, page by page, like a kernel's page cache
that has not been written back. A power cut is: SIGKILL this process (everything not fsynced is
gone, as after a real cut), lazily unmount, and mount again over the same BACKING; the tests do that
between killing the daemon and starting it again.

Metadata (create, unlink, rename, mkdir, chmod) goes to BACKING at once, as on a journalling file
system that commits metadata eagerly; truncation is data and waits for fsync like writes.
Prints "ready" on stdout once mounted. Counts of fsyncs and of bytes written and synced go to
stderr on SIGUSR1.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import threading

from fuse import FUSE, FuseOSError, Operations  # fusepy

PAGE = 4096


class PendingFile:
    """The unsynced state of one file: dirty pages and the size the application sees."""

    def __init__(self, size: int):
        self.pages: dict[int, bytearray] = {}
        self.size = size
        # Durable bytes at or past this offset are cut off by a truncation not yet synced.
        self.zero_from = size


class PowerCutFS(Operations):
    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.mutex = threading.RLock()
        self.pending: dict[str, PendingFile] = {}
        self.stats = {"fsyncs": 0, "written": 0, "synced": 0}

    # ---------------------------------------------------------------- helpers

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _durable_size(self, path: str) -> int:
        try:
            return os.stat(self._full(path)).st_size
        except FileNotFoundError:
            return 0

    def _read_durable(self, path: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._full(path), os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _visible_durable(self, path: str, pending: PendingFile, offset: int, length: int) -> bytes:
        """Durable bytes as the application sees them: zeros past a pending truncation or the size."""
        limit = min(pending.zero_from, pending.size)
        base = self._read_durable(path, offset, max(0, min(length, limit - offset))) if offset < limit else b""
        return base.ljust(length, b"\0")

    def _page(self, path: str, pending: PendingFile, index: int) -> bytearray:
        page = pending.pages.get(index)
        if page is None:
            page = bytearray(self._visible_durable(path, pending, index * PAGE, PAGE))
            pending.pages[index] = page
        return page

    def _sync(self, path: str) -> None:
        pending = self.pending.pop(path, None)
        if pending is None:
            return
        fd = os.open(self._full(path), os.O_WRONLY)
        try:
            os.ftruncate(fd, min(pending.zero_from, os.fstat(fd).st_size))
            for index in sorted(pending.pages):
                start = index * PAGE
                if start >= pending.size:
                    continue
                data = bytes(pending.pages[index][: min(PAGE, pending.size - start)])
                os.pwrite(fd, data, start)
                self.stats["synced"] += len(data)
            os.ftruncate(fd, pending.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.stats["fsyncs"] += 1

    # ---------------------------------------------------------------- metadata

    def getattr(self, path, fh=None):
        with self.mutex:
            try:
                st = os.lstat(self._full(path))
            except FileNotFoundError:
                raise FuseOSError(errno.ENOENT)
            attrs = {k: getattr(st, k) for k in (
                "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")}
            pending = self.pending.get(path)
            if pending is not None:
                attrs["st_size"] = pending.size
            return attrs

    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._full(path), times)

    def statfs(self, path):
        sv = os.statvfs(self._full(path))
        return {k: getattr(sv, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag",
            "f_frsize", "f_namemax")}

    def unlink(self, path):
        with self.mutex:
            self.pending.pop(path, None)
            os.unlink(self._full(path))

    def rename(self, old, new):
        with self.mutex:
            os.rename(self._full(old), self._full(new))
            pending = self.pending.pop(old, None)
            self.pending.pop(new, None)
            if pending is not None:
                self.pending[new] = pending

    def link(self, target, name):
        os.link(self._full(name), self._full(target))

    def symlink(self, name, target):
        os.symlink(target, self._full(name))

    def readlink(self, path):
        return os.readlink(self._full(path))

    # ---------------------------------------------------------------- files

    def open(self, path, flags):
        with self.mutex:
            if flags & os.O_TRUNC:
                self.truncate(path, 0)
            if not os.path.exists(self._full(path)):
                raise FuseOSError(errno.ENOENT)
            return 0

    def create(self, path, mode, fi=None):
        with self.mutex:
            fd = os.open(self._full(path), os.O_WRONLY | os.O_CREAT, mode)
            os.close(fd)
            return 0

    def read(self, path, length, offset, fh):
        with self.mutex:
            pending = self.pending.get(path)
            if pending is None:
                return self._read_durable(path, offset, length)
            end = min(offset + length, pending.size)
            out = bytearray()
            position = offset
            while position < end:
                index, within = divmod(position, PAGE)
                take = min(PAGE - within, end - position)
                page = pending.pages.get(index)
                if page is not None:
                    out += page[within:within + take]
                else:
                    out += self._visible_durable(path, pending, position, take)
                position += take
            return bytes(out)

    def write(self, path, data, offset, fh):
        with self.mutex:
            pending = self.pending.get(path)
            if pending is None:
                pending = PendingFile(self._durable_size(path))
                self.pending[path] = pending
            position = offset
            view = memoryview(data)
            done = 0
            while done < len(data):
                index, within = divmod(position, PAGE)
                take = min(PAGE - within, len(data) - done)
                page = self._page(path, pending, index)
                page[within:within + take] = view[done:done + take]
                done += take
                position += take
            pending.size = max(pending.size, offset + len(data))
            self.stats["written"] += len(data)
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            pending = self.pending.get(path)
            if pending is None:
                pending = PendingFile(self._durable_size(path))
                self.pending[path] = pending
            for index in [i for i in pending.pages if i * PAGE >= length]:
                del pending.pages[index]
            if length % PAGE and (length // PAGE) in pending.pages:
                page = pending.pages[length // PAGE]
                page[length % PAGE:] = bytes(PAGE - length % PAGE)
            pending.zero_from = min(pending.zero_from, length)
            pending.size = length

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        with self.mutex:
            self._sync(path)
            return 0

    def fsyncdir(self, path, datasync, fh):
        return 0


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    backing, mountpoint = sys.argv[1], sys.argv[2]
    fs = PowerCutFS(backing)

    def report(signum, frame):
        print(f"powercut_fs: {fs.stats}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGUSR1, report)

    def announce():
        # Ready once the mount is visible (the kernel answers for it).
        import time
        for _ in range(500):
            if os.path.ismount(mountpoint):
                print("ready", flush=True)
                return
            time.sleep(0.01)
        print("not mounted", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    FUSE(fs, mountpoint, foreground=True, nothreads=False, allow_other=True, default_permissions=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

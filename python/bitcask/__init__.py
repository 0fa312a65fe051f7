"""Python bindings of libbitcask, a Bitcask key-value storage engine.

    import bitcask

    with bitcask.open("./my-db", sync_writes=True) as db:
        db[b"user:1"] = b"alice"
        db[b"user:1"]                      # b"alice"; KeyError if absent
        db.get(b"user:2")                  # None if absent
        for key, value in db.items(prefix=b"user:", reverse=True):
            ...
        with db.batch() as batch:          # committed together on exit
            batch[b"a"] = b"1"
            del batch[b"b"]

Keys and values are bytes-like (bytes, bytearray, memoryview); what comes out
is bytes. Every call goes through the library's C interface (cffi), which
releases the GIL while the library works, so threads sharing one DB run
their calls in parallel. Failures raise subclasses of bitcask.Error that
carry the library's status (Error.status) and detail (str(error)).
"""

from __future__ import annotations

import enum
import os
import threading
from typing import Any, Iterator, NamedTuple, Optional, Tuple, TypeVar, Union, overload

from ._native import ffi, lib

__all__ = [
    "open",
    "DB",
    "Batch",
    "Stats",
    "Status",
    "IndexType",
    "Error",
    "NotFoundError",
    "InvalidArgumentError",
    "CorruptionError",
    "LockedError",
    "BufferTooSmallError",
    "InternalError",
    "ClosedError",
    "MAX_KEY_LEN",
    "MAX_VALUE_LEN",
    "__version__",
]
# bitcask.IOError is exported too, but left out of __all__ so that
# `from bitcask import *` does not hide the builtin IOError.

BytesLike = Union[bytes, bytearray, memoryview]
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_T = TypeVar("_T")

__version__: str = ffi.string(lib.bitcask_version()).decode()
MAX_KEY_LEN: int = lib.BITCASK_MAX_KEY_LEN
MAX_VALUE_LEN: int = lib.BITCASK_MAX_VALUE_LEN


class Status(enum.IntEnum):
    """The library's status codes (bitcask_status); the values never change."""

    OK = lib.BITCASK_OK
    NOT_FOUND = lib.BITCASK_NOT_FOUND
    INVALID_ARGUMENT = lib.BITCASK_INVALID_ARGUMENT
    IO = lib.BITCASK_IO
    CORRUPTION = lib.BITCASK_CORRUPTION
    LOCKED = lib.BITCASK_LOCKED
    BUFFER_TOO_SMALL = lib.BITCASK_BUFFER_TOO_SMALL
    INTERNAL = lib.BITCASK_INTERNAL
    CLOSED = lib.BITCASK_CLOSED


class IndexType(enum.IntEnum):
    """The in-memory index kinds (the index_type option)."""

    ORDERED = lib.BITCASK_INDEX_ORDERED
    HASH = lib.BITCASK_INDEX_HASH


class Error(Exception):
    """A failed libbitcask call: status is its Status, str() the library's
    detail (which starts with the kind of failure, e.g. "locked: ...")."""

    status: Status

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(message)
        self.status = _status(status)


class NotFoundError(Error, KeyError):
    """The key is absent (raised by db[key] and del db[key])."""


class InvalidArgumentError(Error, ValueError):
    """Bad input (empty or over-long key or value, bad option, bad path);
    nothing was changed."""


class IOError(Error):  # noqa: A001 - named after BITCASK_IO, as plyvel names its own
    """The operating system refused a read, write, sync, open or rename."""


class CorruptionError(Error):
    """Stored data fails its checksum or format check."""


class LockedError(Error):
    """Another opener holds the database directory."""


class BufferTooSmallError(Error):
    """Not raised by this package (it grows its buffers); here for completeness."""


class InternalError(Error):
    """A libbitcask bug: a caught panic or a broken invariant."""


class ClosedError(Error):
    """The database is closed, or refuses writes after an unrecoverable
    write or sync failure (reopen it)."""


_ERRORS = {
    Status.NOT_FOUND: NotFoundError,
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.IO: IOError,
    Status.CORRUPTION: CorruptionError,
    Status.LOCKED: LockedError,
    Status.BUFFER_TOO_SMALL: BufferTooSmallError,
    Status.INTERNAL: InternalError,
    Status.CLOSED: ClosedError,
}


def _status(code: int) -> Status:
    try:
        return Status(code)
    except ValueError:  # a code from a newer library
        return code  # type: ignore[return-value]


def _error(code: int) -> Error:
    """The exception for a failed call, with the calling thread's last error
    (set by every failure but NOT_FOUND and BUFFER_TOO_SMALL)."""
    if code in (Status.NOT_FOUND, Status.BUFFER_TOO_SMALL):
        detail = ffi.string(lib.bitcask_status_str(code)).decode()
    else:
        detail = ffi.string(lib.bitcask_last_error()).decode("utf-8", "replace")
    return _ERRORS.get(code, Error)(code, detail)  # type: ignore[call-overload]


def _bytes_arg(data: Any, what: str) -> Any:
    """What cffi passes as a const void * for a bytes-like object (bytes are
    passed as they are; others through the buffer protocol, without a copy)."""
    if isinstance(data, bytes):  # a subclass of bytes
        return bytes(data)
    if isinstance(data, (bytearray, memoryview)):
        return ffi.from_buffer(data)
    raise TypeError(f"{what} must be bytes-like (bytes, bytearray, memoryview), not {type(data).__name__}")


def _path_arg(path: PathLike) -> bytes:
    encoded = os.fsencode(path)
    if b"\0" in encoded:  # C would see only the part before it
        raise InvalidArgumentError(Status.INVALID_ARGUMENT, f"invalid argument: the path {path!r} contains a NUL byte")
    return encoded


class Stats(NamedTuple):
    """Statistics of an open database (bitcask_get_stats)."""

    key_count: int
    """Live keys."""
    data_file_count: int
    """Data files on disk, the one being written included."""
    reclaimable_bytes: int
    """Bytes a merge would free."""
    disk_bytes: int
    """Total size of the files in the database directory."""


class _Scratch(threading.local):
    """Per-thread out-parameters and read buffer, so that a get allocates
    nothing but the bytes it returns."""

    # Values up to this size are read into the thread's reusable buffer;
    # larger ones into a buffer of their own (not kept).
    KEEP = 1 << 20

    def __init__(self) -> None:
        self.size_out = ffi.new("size_t *")
        self.buf = ffi.new("char[]", 4096)
        self.buf_len = 4096


_scratch = _Scratch()


class DB:
    """An open database (bitcask_db). Open with bitcask.open(path, **options)
    or DB(path, **options); use as a context manager, or call close().

    Options (keyword-only; None keeps the library's default): data_file_size,
    sync_writes, bytes_per_sync, mmap_at_startup, max_batch_bytes,
    auto_merge_ratio, auto_merge_min_bytes, checkpoint_bytes, index_type
    ("ordered", "hash" or an IndexType). README.md documents what each does.

    Any number of threads may use one DB at once, except close(), which must
    not run while another thread is inside a call on it (as with
    bitcask_close); calls after close() raise ClosedError.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        data_file_size: Optional[int] = None,
        sync_writes: Optional[bool] = None,
        bytes_per_sync: Optional[int] = None,
        mmap_at_startup: Optional[bool] = None,
        max_batch_bytes: Optional[int] = None,
        auto_merge_ratio: Optional[float] = None,
        auto_merge_min_bytes: Optional[int] = None,
        checkpoint_bytes: Optional[int] = None,
        index_type: Union[None, str, IndexType] = None,
    ) -> None:
        self._h: Any = ffi.NULL  # NULL once closed: the library then refuses every call
        self.path = os.fsdecode(path)
        opts = lib.bitcask_options_new()
        if opts == ffi.NULL:
            raise MemoryError("bitcask_options_new")
        try:
            for setter, value in (
                (lib.bitcask_options_set_data_file_size, data_file_size),
                (lib.bitcask_options_set_sync_writes, sync_writes),
                (lib.bitcask_options_set_bytes_per_sync, bytes_per_sync),
                (lib.bitcask_options_set_mmap_at_startup, mmap_at_startup),
                (lib.bitcask_options_set_max_batch_bytes, max_batch_bytes),
                (lib.bitcask_options_set_auto_merge_ratio, auto_merge_ratio),
                (lib.bitcask_options_set_auto_merge_min_bytes, auto_merge_min_bytes),
                (lib.bitcask_options_set_checkpoint_bytes, checkpoint_bytes),
                (lib.bitcask_options_set_index_type, _index_type(index_type)),
            ):
                if value is None:
                    continue
                try:
                    code = setter(opts, value)
                except (TypeError, OverflowError) as e:  # cffi's own conversion of the value
                    raise InvalidArgumentError(Status.INVALID_ARGUMENT, f"invalid argument: {e}") from None
                if code != Status.OK:
                    raise _error(code)
            out = ffi.new("bitcask_db **")
            code = lib.bitcask_open(_path_arg(path), opts, out)
        finally:
            lib.bitcask_options_free(opts)
        if code != Status.OK:
            raise _error(code)
        self._h = out[0]

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Syncs, unlocks and frees the database. The handle is gone even
        when this raises (the final sync failed). Closing twice is a no-op."""
        h, self._h = self._h, ffi.NULL
        if h:
            code = lib.bitcask_close(h)
            if code != Status.OK:
                raise _error(code)

    @property
    def closed(self) -> bool:
        return not self._h

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        h, self._h = getattr(self, "_h", None), ffi.NULL
        if h:
            try:
                lib.bitcask_close(h)
            except Exception:  # the interpreter may be shutting down
                pass

    def __repr__(self) -> str:
        return f"<bitcask.DB {self.path!r} {'open' if self._h else 'closed'}>"

    def _fail(self, code: int) -> Error:
        if not self._h:
            return ClosedError(Status.CLOSED, "closed: this bitcask.DB was closed")
        return _error(code)

    # -- reads and writes --------------------------------------------------

    def put(self, key: BytesLike, value: BytesLike) -> None:
        """Stores value under key."""
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        if type(value) is not bytes:
            value = _bytes_arg(value, "value")
        code = lib.bitcask_put(self._h, key, len(key), value, len(value))
        if code:
            raise self._fail(code)

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self.put(key, value)

    @overload
    def get(self, key: BytesLike) -> Optional[bytes]: ...
    @overload
    def get(self, key: BytesLike, default: _T) -> Union[bytes, _T]: ...

    def get(self, key: BytesLike, default: Any = None) -> Any:
        """The value of key, or default if it is absent."""
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        s = _scratch
        buf, buf_len, size_out = s.buf, s.buf_len, s.size_out
        while True:
            code = lib.bitcask_get_into(self._h, key, len(key), buf, buf_len, size_out)
            if code == 0:
                return ffi.unpack(buf, size_out[0])
            if code == 1:  # NOT_FOUND
                return default
            if code != 6:  # not BUFFER_TOO_SMALL
                raise self._fail(code)
            # The value is larger than the buffer: grow (keep it if not huge), read again.
            buf_len = size_out[0]
            buf = ffi.new("char[]", buf_len)
            if buf_len <= s.KEEP:
                s.buf, s.buf_len = buf, buf_len

    def __getitem__(self, key: BytesLike) -> bytes:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise NotFoundError(Status.NOT_FOUND, key)
        return value  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        code = lib.bitcask_get_into(self._h, key, len(key), ffi.NULL, 0, _scratch.size_out)  # type: ignore[arg-type]
        if code == 0 or code == 6:  # found (an empty value, or the size of one)
            return True
        if code == 1:
            return False
        raise self._fail(code)

    def delete(self, key: BytesLike) -> None:
        """Deletes key; an absent key is not an error (see del db[key])."""
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        code = lib.bitcask_delete(self._h, key, len(key))
        if code:
            raise self._fail(code)

    def __delitem__(self, key: BytesLike) -> None:
        """Deletes key, raising KeyError (NotFoundError) if it is absent.
        The check and the delete are two calls: a writer in another thread
        may come between them (use delete() to skip the check)."""
        if key not in self:
            raise NotFoundError(Status.NOT_FOUND, key)
        self.delete(key)

    def __len__(self) -> int:
        """The number of live keys."""
        return self.stats().key_count

    def sync(self) -> None:
        """Makes every write so far durable (fdatasync)."""
        code = lib.bitcask_sync(self._h)
        if code:
            raise self._fail(code)

    # -- iteration ---------------------------------------------------------

    def items(self, prefix: BytesLike = b"", reverse: bool = False) -> Iterator[Tuple[bytes, bytes]]:
        """(key, value) pairs in key order (descending if reverse), only
        those whose key starts with prefix, as the database was when the
        iteration began: later writes do not change it."""
        return self._walk(prefix, reverse, True, True)  # type: ignore[return-value]

    def keys(self, prefix: BytesLike = b"", reverse: bool = False) -> Iterator[bytes]:
        """Keys, as items() walks them; no value is read."""
        return self._walk(prefix, reverse, True, False)  # type: ignore[return-value]

    def values(self, prefix: BytesLike = b"", reverse: bool = False) -> Iterator[bytes]:
        """Values, in the order of their keys, as items() walks them."""
        return self._walk(prefix, reverse, False, True)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def _walk(self, prefix: BytesLike, reverse: bool, want_key: bool, want_value: bool) -> Iterator[Any]:
        if type(prefix) is not bytes:
            prefix = _bytes_arg(prefix, "prefix")
        out = ffi.new("bitcask_iter **")
        code = lib.bitcask_iter_new(self._h, prefix, len(prefix), bool(reverse), out)
        if code:
            raise self._fail(code)
        return _walk(self, out[0], want_key, want_value)

    # -- batches and maintenance -------------------------------------------

    def batch(self) -> Batch:
        """An empty write batch: `with db.batch() as b:` commits on exit,
        or discards everything if the block raises."""
        out = ffi.new("bitcask_batch **")
        code = lib.bitcask_batch_new(self._h, out)
        if code:
            raise self._fail(code)
        return Batch(self, out[0])

    def stats(self) -> Stats:
        out = ffi.new("bitcask_stats *")
        code = lib.bitcask_get_stats(self._h, out)
        if code:
            raise self._fail(code)
        return Stats(out.key_count, out.data_file_count, out.reclaimable_bytes, out.disk_bytes)

    def merge(self) -> None:
        """Frees the space of overwritten and deleted records, online."""
        code = lib.bitcask_merge(self._h)
        if code:
            raise self._fail(code)

    def backup(self, dest: PathLike) -> None:
        """Writes a consistent copy into dest (a missing or empty directory)."""
        code = lib.bitcask_backup(self._h, _path_arg(dest))
        if code:
            raise self._fail(code)


_MISSING = object()


def _walk(db: DB, it: Any, want_key: bool, want_value: bool) -> Iterator[Any]:
    """Walks a bitcask_iter, freeing it when done (or when the generator is
    closed or collected). Holds db, so the database stays open meanwhile.

    Each call through cffi costs far more than the library's work here, so a
    step makes as few as it can: bitcask_iter_key (NULL once exhausted, so no
    bitcask_iter_valid), bitcask_iter_value if values are wanted, and
    bitcask_iter_next."""
    key_of, value_of, step = lib.bitcask_iter_key, lib.bitcask_iter_value, lib.bitcask_iter_next
    unpack, cast, charp = ffi.unpack, ffi.cast, _CHAR_P
    key_len = ffi.new("size_t *")
    value_ptr = ffi.new("const void **")
    value_len = ffi.new("size_t *")
    try:
        while True:
            key_ptr = key_of(it, key_len)
            if not key_ptr:  # exhausted, or the database was closed
                return
            if want_value:
                code = value_of(it, value_ptr, value_len)
                if code:
                    raise db._fail(code)
                value = unpack(cast(charp, value_ptr[0]), value_len[0])
                if want_key:
                    yield unpack(cast(charp, key_ptr), key_len[0]), value
                else:
                    yield value
            else:
                yield unpack(cast(charp, key_ptr), key_len[0])
            step(it)
    finally:
        lib.bitcask_iter_free(it)


_CHAR_P = ffi.typeof("char *")


class Batch:
    """Puts and deletes kept in memory until commit() makes all of them
    visible, and durable, together (bitcask_batch). As a context manager it
    commits when the block ends and discards everything if it raises. After
    a commit it is empty and may be reused."""

    def __init__(self, db: DB, handle: Any) -> None:
        self._db = db  # keeps the database open while the batch lives
        self._h = handle

    def put(self, key: BytesLike, value: BytesLike) -> None:
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        if type(value) is not bytes:
            value = _bytes_arg(value, "value")
        code = lib.bitcask_batch_put(self._h, key, len(key), value, len(value))
        if code:
            raise self._fail(code)

    def delete(self, key: BytesLike) -> None:
        if type(key) is not bytes:
            key = _bytes_arg(key, "key")
        code = lib.bitcask_batch_delete(self._h, key, len(key))
        if code:
            raise self._fail(code)

    __setitem__ = put
    __delitem__ = delete

    def commit(self) -> None:
        code = lib.bitcask_batch_commit(self._h)
        if code:
            raise self._fail(code)

    def close(self) -> None:
        """Releases the batch, dropping what was not committed."""
        h, self._h = self._h, ffi.NULL
        if h:
            lib.bitcask_batch_free(h)

    def _fail(self, code: int) -> Error:
        if not self._h:
            return ClosedError(Status.CLOSED, "closed: this bitcask.Batch was closed")
        return _error(code)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()

    def __del__(self) -> None:
        h, self._h = getattr(self, "_h", None), ffi.NULL
        if h:
            try:
                lib.bitcask_batch_free(h)
            except Exception:
                pass


def _index_type(value: Union[None, str, IndexType]) -> Optional[int]:
    if value is None or isinstance(value, IndexType):
        return value
    if isinstance(value, str) and value.upper() in IndexType.__members__:
        return IndexType[value.upper()]
    raise InvalidArgumentError(
        Status.INVALID_ARGUMENT, f"invalid argument: index_type must be 'ordered' or 'hash', not {value!r}"
    )


def open(path: PathLike, **options: Any) -> DB:  # noqa: A001 - bitcask.open, like dbm.open
    """Opens (creating it if missing) the database in directory path; see DB
    for the options. Raises LockedError if another opener holds it."""
    return DB(path, **options)

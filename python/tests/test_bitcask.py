"""Tests of the bitcask Python package, as installed by pip (make python-test).

BITCASK_STAGE (an install made by `make stage`) lets the cross-language test
build its C writer; BITCASK_README points at the README whose Python snippet
is run. make python-test sets both; without them those tests fail.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

import bitcask

# -- the package itself ------------------------------------------------------


def test_the_package_carries_and_loads_its_own_library():
    import bitcask._native as native

    package_dir = pathlib.Path(bitcask.__file__).parent
    libs = list((package_dir / "_native").glob("*.so"))
    assert len(libs) == 1, libs
    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if line.rstrip().endswith(".so")}
    assert str(libs[0].resolve()) in loaded
    assert pathlib.Path(native.__file__).parent == package_dir / "_native"
    from importlib.metadata import version

    assert bitcask.__version__ == version("bitcask")  # the library's, and the package's (both Cargo.toml's)
    assert (package_dir / "py.typed").exists()


# -- mapping API ---------------------------------------------------------------


def test_mapping_api(dbdir):
    with bitcask.open(dbdir) as db:
        assert len(db) == 0
        db[b"a"] = b"1"
        db[b"b"] = b""  # an empty value
        assert db[b"a"] == b"1"
        assert db[b"b"] == b""
        assert b"a" in db and b"b" in db and b"zz" not in db
        assert db.get(b"zz") is None
        assert db.get(b"zz", b"default") == b"default"
        assert len(db) == 2
        with pytest.raises(KeyError) as missing:
            db[b"zz"]
        assert isinstance(missing.value, bitcask.NotFoundError)
        assert missing.value.status == bitcask.Status.NOT_FOUND
        assert missing.value.args == (b"zz",)
        del db[b"a"]
        assert b"a" not in db
        with pytest.raises(KeyError):
            del db[b"a"]  # absent: KeyError, like a dict
        db.delete(b"a")  # absent: no error
        db.put(b"c", b"3")
        assert list(db) == [b"b", b"c"]
        db.sync()


def test_bytes_like_keys_and_values(dbdir):
    with bitcask.DB(dbdir) as db:
        db[bytearray(b"k1")] = memoryview(b"v1")
        db[memoryview(b"k2")] = bytearray(b"v2")
        assert db[b"k1"] == b"v1" and db[bytearray(b"k2")] == b"v2"
        assert memoryview(b"k1") in db
        binary = bytes(range(256)) * 3
        db[b"\x00\xff"] = binary
        assert db[b"\x00\xff"] == binary
        with pytest.raises(TypeError):
            db["text"] = b"v"
        with pytest.raises(TypeError):
            db[b"k"] = "text"
        with pytest.raises(TypeError):
            db.get(1)


def test_values_of_every_size_come_back_whole(dbdir):
    with bitcask.open(dbdir) as db:
        sizes = [0, 1, 4095, 4096, 4097, 100_000, (1 << 20) + 1, 3 << 20]
        for n in sizes:
            db[b"v%d" % n] = bytes([n % 251]) * n
        for _ in range(2):  # the second round reads into the grown buffers
            for n in sizes:
                assert db[b"v%d" % n] == bytes([n % 251]) * n


# -- errors ----------------------------------------------------------------------


def test_errors_carry_status_and_the_library_detail_once(dbdir):
    with bitcask.open(dbdir) as db:
        with pytest.raises(bitcask.InvalidArgumentError) as bad:
            db[b""] = b"v"
        assert isinstance(bad.value, ValueError) and isinstance(bad.value, bitcask.Error)
        assert bad.value.status == bitcask.Status.INVALID_ARGUMENT
        assert str(bad.value).startswith("invalid argument: ")
        assert str(bad.value).count("invalid argument") == 1
        with pytest.raises(bitcask.InvalidArgumentError):
            db[b"k" * (bitcask.MAX_KEY_LEN + 1)] = b"v"

        with pytest.raises(bitcask.LockedError) as locked:
            bitcask.open(dbdir)
        assert locked.value.status == bitcask.Status.LOCKED
        assert str(locked.value).startswith("locked: ")
    with pytest.raises(bitcask.InvalidArgumentError, match="data_file_size"):
        bitcask.open(dbdir, data_file_size=1)
    with pytest.raises(bitcask.InvalidArgumentError, match="index_type"):
        bitcask.open(dbdir, index_type="btree")
    with pytest.raises(bitcask.InvalidArgumentError):
        bitcask.open(dbdir, bytes_per_sync=-1)
    with pytest.raises(bitcask.InvalidArgumentError, match="NUL"):
        bitcask.open(str(dbdir) + "\0x")
    with pytest.raises(TypeError):
        bitcask.open(dbdir, no_such_option=True)


def test_options_are_passed(dbdir):
    with bitcask.open(
        dbdir,
        data_file_size=4096,
        sync_writes=True,
        bytes_per_sync=0,
        mmap_at_startup=False,
        max_batch_bytes=1 << 20,
        auto_merge_ratio=0,
        auto_merge_min_bytes=0,
        checkpoint_bytes=1 << 20,
        index_type="hash",
    ) as db:
        for i in range(100):
            db[b"k%03d" % i] = b"x" * 100
        assert db.stats().data_file_count > 1  # 4096-byte data files
        assert list(db.keys())[:3] == [b"k000", b"k001", b"k002"]  # in order, hash index too


def test_closed_database(dbdir):
    db = bitcask.open(dbdir)
    db[b"k"] = b"v"
    db.close()
    db.close()  # twice: no-op
    assert db.closed
    for call in (lambda: db[b"k"], lambda: db.put(b"k", b"v"), lambda: b"k" in db, db.stats, db.sync):
        with pytest.raises(bitcask.ClosedError):
            call()
    with bitcask.open(dbdir) as again:  # the lock was released
        assert again[b"k"] == b"v"
    assert again.closed


# -- iteration --------------------------------------------------------------------


def test_items_keys_values_with_prefix_and_reverse(dbdir):
    with bitcask.open(dbdir) as db:
        for k in [b"user:3", b"user:1", b"group:a", b"user:2", b"user:10"]:
            db[k] = b"v-" + k
        assert list(db.keys()) == [b"group:a", b"user:1", b"user:10", b"user:2", b"user:3"]
        assert list(db.keys(prefix=b"user:", reverse=True)) == [b"user:3", b"user:2", b"user:10", b"user:1"]
        assert list(db.items(prefix=b"group:")) == [(b"group:a", b"v-group:a")]
        assert list(db.values(prefix=bytearray(b"user:1"))) == [b"v-user:1", b"v-user:10"]
        assert list(db.items(prefix=b"none:")) == []

        # A snapshot: writes after the iteration began are not in it.
        walk = db.keys(prefix=b"user:")
        assert next(walk) == b"user:1"
        db[b"user:0"] = b"late"
        del db[b"user:3"]
        assert list(walk) == [b"user:10", b"user:2", b"user:3"]

        # An iteration left unfinished, then the database closed under another.
        unfinished = db.items()
        next(unfinished)
        unfinished.close()
        survivor = db.keys()
        assert next(survivor) == b"group:a"
    assert list(survivor) == []  # the database was closed: the walk ends


# -- batches and maintenance --------------------------------------------------------


def test_batch_commits_on_exit_and_discards_on_exception(dbdir):
    with bitcask.open(dbdir) as db:
        db[b"gone"] = b"x"
        with db.batch() as b:
            b[b"a"] = b"1"
            b.put(bytearray(b"b"), memoryview(b"2"))
            del b[b"gone"]
            assert b"a" not in db  # nothing visible before commit
        assert db[b"a"] == b"1" and db[b"b"] == b"2" and b"gone" not in db

        with pytest.raises(RuntimeError):
            with db.batch() as b:
                b[b"a"] = b"changed"
                b[b"c"] = b"3"
                raise RuntimeError("abandon the batch")
        assert db[b"a"] == b"1" and b"c" not in db

        b = db.batch()
        b[b"x"] = b"1"
        b.commit()
        b[b"y"] = b"2"  # reused after commit
        b.commit()
        with pytest.raises(bitcask.InvalidArgumentError):
            b[b""] = b"v"
        b.close()
        assert db[b"x"] == b"1" and db[b"y"] == b"2"
        with pytest.raises(bitcask.ClosedError):
            b[b"z"] = b"3"

        late = db.batch()
        late[b"z"] = b"1"
    with pytest.raises(bitcask.ClosedError, match="^closed: "):  # its database was closed
        late.commit()
    late.close()


def test_stats_merge_backup(dbdir, tmp_path):
    with bitcask.open(dbdir) as db:
        for round in range(5):
            for i in range(20):
                db[b"k%02d" % i] = bytes([round]) * 200
        before = db.stats()
        assert isinstance(before, bitcask.Stats)
        assert before.key_count == 20 and before.reclaimable_bytes > 0
        db.merge()
        assert db.stats().reclaimable_bytes == 0
        db.backup(tmp_path / "backup")
        with pytest.raises(bitcask.InvalidArgumentError):
            db.backup(tmp_path / "backup")  # not empty any more
    with bitcask.open(tmp_path / "backup") as copy:
        assert len(copy) == 20 and copy[b"k07"] == bytes([4]) * 200


# -- threads ------------------------------------------------------------------------


def test_threads_share_one_database(dbdir):
    threads, keys = 8, 500
    with bitcask.open(dbdir) as db:
        for i in range(100):
            db[b"shared:%03d" % i] = b"value %d" % i
        wrong = []
        start = threading.Barrier(threads)

        def work(t):
            start.wait()
            for n in range(keys):
                key = b"t%d:%04d" % (t, n)
                db[key] = key * 2
                if db.get(key) != key * 2:
                    wrong.append(key)
                shared = b"shared:%03d" % (n % 100)
                if db[shared] != b"value %d" % (n % 100):
                    wrong.append(shared)
            with db.batch() as b:
                b[b"batch:%d" % t] = b"done"

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert wrong == []
        assert len(db) == 100 + threads * keys + threads
        for t in range(threads):
            assert list(db.values(prefix=b"t%d:" % t)) == [b"t%d:%04d" % (t, n) * 2 for n in range(keys)]


FIFO_SCENARIO = textwrap.dedent(
    """
    # Opens a database whose older data file is a FIFO, in a thread: the
    # library's open(2) and read(2) of it block until this (main) thread has
    # opened the FIFO for writing and closed it again, which is Python code
    # it can only run while the opening thread does not hold the GIL.
    import glob, os, sys, threading
    import bitcask
    d = sys.argv[1]
    with bitcask.open(d) as db:
        db[b"k"] = b"v"
    os.rename(d + "/000000001.data", d + "/000000002.data")
    for hint in glob.glob(d + "/*.hint"):
        os.remove(hint)
    os.mkfifo(d + "/000000001.data")
    if sys.argv[2] == "cffi":
        def call_open():
            try:
                bitcask.open(d).close()
            except bitcask.Error:
                pass  # the FIFO is no data file: an error, after the reads
    else:  # the control: the same call through ctypes.PyDLL, which keeps the GIL
        import ctypes
        lib = ctypes.PyDLL(glob.glob(os.path.dirname(bitcask.__file__) + "/_native/*.so")[0])
        def call_open():
            db = ctypes.c_void_p()
            if lib.bitcask_open(d.encode(), None, ctypes.byref(db)) == 0:
                lib.bitcask_close(db)
    opener = threading.Thread(target=call_open)
    opener.start()
    os.close(os.open(d + "/000000001.data", os.O_WRONLY))
    opener.join()
    print("completed")
    """
)


def test_the_gil_is_released_during_library_calls(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", FIFO_SCENARIO, str(tmp_path / "db"), "cffi"],
        capture_output=True,
        text=True,
        timeout=120,  # only a failure waits this long: a deadlock
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed"


def test_control_a_call_that_keeps_the_gil_deadlocks_the_scenario(tmp_path):
    # Shows that the scenario above can fail: through ctypes.PyDLL, which
    # holds the GIL during the call, it never completes.
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(
            [sys.executable, "-c", FIFO_SCENARIO, str(tmp_path / "db"), "pydll"],
            capture_output=True,
            timeout=5,
        )


# -- with C, and the README ---------------------------------------------------------


def test_a_database_written_from_c_reads_in_python(tmp_path):
    stage = os.environ.get("BITCASK_STAGE")
    assert stage, "set BITCASK_STAGE to an install made by `make stage` (make python-test does)"
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(stage, "lib", "pkgconfig"))
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "bitcask"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    writer = tmp_path / "c_writer"
    source = pathlib.Path(__file__).with_name("c_writer.c")
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", str(source), "-o", str(writer), *flags], check=True)
    env["LD_LIBRARY_PATH"] = os.path.join(stage, "lib")
    subprocess.run([str(writer), str(tmp_path / "db")], env=env, check=True)

    with bitcask.open(tmp_path / "db") as db:
        assert len(db) == 1000 - 1 + 2
        for i in range(1000):
            key = b"c:%05d" % i
            if i == 500:
                assert key not in db
            else:
                assert db[key] == bytes((i + j) % 256 for j in range(i % 300))
        assert db[b"batch:a"] == b"A" and db[b"batch:b"] == b""
        assert list(db.keys(prefix=b"batch:")) == [b"batch:a", b"batch:b"]


def readme_snippet(name, readme=None):
    readme = readme or os.environ.get("BITCASK_README")
    assert readme, "set BITCASK_README to the repository's README.md (make python-test does)"
    lines = pathlib.Path(readme).read_text().splitlines()
    start = lines.index(f"<!-- test: {name} -->")
    assert lines[start + 1].startswith("```")
    end = lines.index("```", start + 2)
    return "\n".join(lines[start + 2 : end]) + "\n"


@pytest.mark.parametrize(
    "name, readme",
    [("python", None), ("python-package", pathlib.Path(__file__).parents[1] / "README.md")],
)
def test_the_readme_python_snippets_run(tmp_path, name, readme):
    code = readme_snippet(name, readme)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout, "the snippet prints what it read"
    shutil.rmtree(tmp_path)

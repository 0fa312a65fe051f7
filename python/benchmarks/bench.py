"""The bitcask Python package beside py-lmdb and plyvel (LevelDB), through
each one's Python API: put, get and iterate. Run by `make pybench`, which
installs the three into a virtual environment (a peer that does not install
is left out); not part of `make test`.

    python bench.py [--keys N] [--value-size B] [--repeat R] [--dir DIR]

Keys are 16 bytes, put and got in a random order (the same every run), values
B bytes. Every engine runs without syncing to disk (what each does by
default, except lmdb, opened with sync=False):
- put: one put per key into an empty database; for lmdb, one write
  transaction per put (each put on its own, as in the others);
- get: every key once; for lmdb, all in one read transaction (its fastest
  way; a transaction per get is slower);
- iterate: every key and value in key order.
Each row is the best of R runs (fresh database each run), in operations per
second, with the ratio bitcask / peer (above 1: bitcask is faster). Numbers
from a shared machine are noisy: compare runs of one machine.
"""

import argparse
import os
import platform
import random
import shutil
import tempfile
import time

import bitcask

try:
    import lmdb
except ImportError:
    lmdb = None
try:
    import plyvel
except ImportError:
    plyvel = None


class Bitcask:
    name = "bitcask"

    def __init__(self, path, index_type="ordered"):
        self.db = bitcask.open(path, index_type=index_type)
        self.name = f"bitcask ({index_type})"

    def put_all(self, items):
        db = self.db
        for k, v in items:
            db[k] = v

    def get_all(self, keys):
        get = self.db.get
        for k in keys:
            if get(k) is None:
                raise AssertionError(k)

    def iterate(self):
        return sum(1 for _ in self.db.items())

    def close(self):
        self.db.close()


class Lmdb:
    name = "lmdb"

    def __init__(self, path):
        self.env = lmdb.open(path, map_size=8 << 30, sync=False, metasync=False)
        self.name = f"lmdb {lmdb.__version__}"

    def put_all(self, items):
        env = self.env
        for k, v in items:
            with env.begin(write=True) as txn:
                txn.put(k, v)

    def get_all(self, keys):
        with self.env.begin() as txn:
            get = txn.get
            for k in keys:
                if get(k) is None:
                    raise AssertionError(k)

    def iterate(self):
        with self.env.begin() as txn:
            return sum(1 for _ in txn.cursor())

    def close(self):
        self.env.close()


class Plyvel:
    name = "plyvel"

    def __init__(self, path):
        self.db = plyvel.DB(path, create_if_missing=True)
        self.name = f"plyvel {plyvel.__version__} (LevelDB {plyvel.__leveldb_version__})"

    def put_all(self, items):
        put = self.db.put
        for k, v in items:
            put(k, v)

    def get_all(self, keys):
        get = self.db.get
        for k in keys:
            if get(k) is None:
                raise AssertionError(k)

    def iterate(self):
        return sum(1 for _ in self.db)

    def close(self):
        self.db.close()


def run(make, n, items, keys, repeat, root):
    best = {"put": 0.0, "get": 0.0, "iterate": 0.0}
    name = None
    for r in range(repeat):
        path = os.path.join(root, f"run{r}")
        engine = make(path)
        name = engine.name
        t = time.perf_counter()
        engine.put_all(items)
        best["put"] = max(best["put"], n / (time.perf_counter() - t))
        t = time.perf_counter()
        engine.get_all(keys)
        best["get"] = max(best["get"], n / (time.perf_counter() - t))
        t = time.perf_counter()
        seen = engine.iterate()
        best["iterate"] = max(best["iterate"], n / (time.perf_counter() - t))
        if seen != n:
            raise AssertionError(f"{name} iterated {seen} of {n} keys")
        engine.close()
        shutil.rmtree(path)
    return name, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the databases go (default: the temp directory)")
    args = parser.parse_args()

    rng = random.Random(42)
    n = args.keys
    keys = [b"key%013d" % i for i in range(n)]
    rng.shuffle(keys)
    items = [(k, rng.randbytes(args.value_size)) for k in keys]
    get_order = keys[:]
    rng.shuffle(get_order)

    engines = [lambda p: Bitcask(p, "ordered"), lambda p: Bitcask(p, "hash")]
    missing = []
    if lmdb is not None:
        engines.append(Lmdb)
    else:
        missing.append("lmdb")
    if plyvel is not None:
        engines.append(Plyvel)
    else:
        missing.append("plyvel")

    print(f"{n} keys of 16 bytes, values of {args.value_size} bytes, best of {args.repeat}")
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    if missing:
        print(f"left out (did not install): {', '.join(missing)}")
    root = tempfile.mkdtemp(prefix="bitcask-pybench-", dir=args.dir)
    try:
        results = [run(make, n, items, get_order, args.repeat, root) for make in engines]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    ops = ["put", "get", "iterate"]
    print()
    print("| engine | " + " | ".join(f"{op} (k ops/s)" for op in ops) + " |")
    print("| --- |" + " --- |" * len(ops))
    for name, best in results:
        print(f"| {name} | " + " | ".join(f"{best[op] / 1000:.0f}" for op in ops) + " |")
    print()
    print("| bitcask / peer | " + " | ".join(ops) + " |")
    print("| --- |" + " --- |" * len(ops))
    for name, best in results[:2]:
        for peer_name, peer in results[2:]:
            ratios = " | ".join(f"{best[op] / peer[op]:.2f}x" for op in ops)
            print(f"| {name} / {peer_name} | {ratios} |")


if __name__ == "__main__":
    main()

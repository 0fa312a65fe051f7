// Tests of include/bitcask.hpp, the C++17 wrapper, built through pkg-config
// against an install and run under valgrind (make cxx-test).
// Usage: test_wrapper DIR (a scratch directory, created; removed first).
#include <bitcask.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

static_assert(!std::is_copy_constructible_v<bitcask::DB>, "DB is move-only");
static_assert(std::is_nothrow_move_constructible_v<bitcask::DB>, "DB moves without throwing");
static_assert(!std::is_copy_constructible_v<bitcask::Iterator>, "Iterator is move-only");
static_assert(!std::is_copy_constructible_v<bitcask::Batch>, "Batch is move-only");
static_assert(!std::is_copy_constructible_v<bitcask::Options>, "Options is move-only");
static_assert(std::is_base_of_v<std::runtime_error, bitcask::Error>, "Error is a runtime_error");

static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

// Runs f, which must throw bitcask::Error with this status; returns its what().
template <class F> static std::string expect_error(bitcask_status status, F f)
{
    try {
        f();
    } catch (const bitcask::Error &e) {
        if (e.status() != status)
            std::fprintf(stderr, "expected status %d, got %d (%s)\n", status, e.status(), e.what());
        CHECK(e.status() == status);
        return e.what();
    }
    std::fprintf(stderr, "expected bitcask::Error with status %d, nothing was thrown\n", status);
    failures++;
    return "";
}

static bool starts_with(const std::string &s, const std::string &prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

static void core(const std::string &dir)
{
    bitcask::DB db(dir + "/core");
    db.put("k", "v");
    CHECK(db.get("k") == std::optional<std::string>("v"));
    CHECK(!db.get("absent").has_value());

    // Binary keys and values, an embedded NUL, an empty value.
    const std::string key("a\0b", 3), value("\0\1\2\3", 4);
    db.put(key, value);
    CHECK(db.get(key) == value);
    db.put("empty", "");
    CHECK(db.get("empty") == std::string());

    // get_into a std::string: small and large values, capacity reused.
    std::string out;
    const std::string big(100000, 'x');
    db.put("big", big);
    CHECK(db.get_into("big", out) && out == big);
    const auto capacity = out.capacity();
    CHECK(db.get_into("k", out) && out == "v");
    CHECK(out.capacity() == capacity);
    CHECK(!db.get_into("absent", out) && out.empty());

    // get_into a caller's buffer: the length, written only if it fits.
    char buf[4] = {'-', '-', '-', '-'};
    CHECK(db.get_into("k", buf, sizeof buf) == std::optional<std::size_t>(1) && buf[0] == 'v');
    buf[0] = '-';
    CHECK(db.get_into("big", buf, sizeof buf) == std::optional<std::size_t>(big.size()));
    CHECK(buf[0] == '-');
    CHECK(!db.get_into("absent", buf, sizeof buf).has_value());

    db.del("k");
    CHECK(!db.get("k").has_value());
    db.del("k"); // absent: not an error
    db.sync();

    // Bad input: an Error with the status and the library's text, once.
    std::string what = expect_error(BITCASK_INVALID_ARGUMENT, [&] { db.put("", "v"); });
    CHECK(starts_with(what, "invalid argument: "));
    CHECK(what.find("invalid argument", 1) == std::string::npos);
    what = expect_error(BITCASK_INVALID_ARGUMENT, [&] { db.get(""); });
    CHECK(starts_with(what, "invalid argument: "));

    // A second opener of the same directory: BITCASK_LOCKED.
    what = expect_error(BITCASK_LOCKED, [&] { bitcask::DB again(dir + "/core"); });
    CHECK(starts_with(what, "locked: "));
}

static void options_and_moves(const std::string &dir)
{
    bitcask::Options options;
    options.sync_writes(true).data_file_size(1 << 20).bytes_per_sync(0).mmap_at_startup(true);
    options.max_batch_bytes(1 << 20).auto_merge_ratio(0).auto_merge_min_bytes(0).checkpoint_bytes(0);
    options.index_type(bitcask::IndexType::hash);
    std::string what = expect_error(BITCASK_INVALID_ARGUMENT, [&] { options.data_file_size(1); });
    CHECK(starts_with(what, "invalid argument: "));
    expect_error(BITCASK_INVALID_ARGUMENT, [&] { options.auto_merge_ratio(2.0); });

    {
        bitcask::DB db(dir + "/moves", options);
        db.put("a", "1");
        bitcask::DB moved(std::move(db));
        CHECK(moved.get("a") == std::string("1"));
        // The moved-from handle is empty: calls fail, nothing crashes.
        expect_error(BITCASK_INVALID_ARGUMENT, [&] { db.put("a", "2"); }); // NOLINT(bugprone-use-after-move)
        bitcask::DB other(dir + "/moves-other");
        other = std::move(moved); // closes other's database, takes moved's
        CHECK(other.get("a") == std::string("1"));
        other.close();
        expect_error(BITCASK_INVALID_ARGUMENT, [&] { other.get("a"); });
    }
    // Every handle above is closed: both directories open again.
    bitcask::DB reopened(dir + "/moves");
    CHECK(reopened.get("a") == std::string("1"));
    bitcask::DB reopened_other(dir + "/moves-other");
}

static void iteration(const std::string &dir)
{
    bitcask::DB db(dir + "/iter");
    for (const char *k : {"user:3", "user:1", "group:a", "user:2", "user:10"})
        db.put(k, std::string("v-") + k);

    std::vector<std::string> keys;
    for (auto &entry : db.iter()) {
        keys.emplace_back(entry.key());
        CHECK(entry.value() == "v-" + std::string(entry.key()));
    }
    CHECK((keys == std::vector<std::string>{"group:a", "user:1", "user:10", "user:2", "user:3"}));

    keys.clear();
    for (auto &entry : db.iter("user:", true))
        keys.emplace_back(entry.key());
    CHECK((keys == std::vector<std::string>{"user:3", "user:2", "user:10", "user:1"}));

    // Seek, then walk on from there; rewind; a snapshot misses later writes.
    bitcask::Iterator it = db.iter("user:");
    it.seek("user:2");
    keys.clear();
    for (auto &entry : it)
        keys.emplace_back(entry.key());
    CHECK((keys == std::vector<std::string>{"user:2", "user:3"}));
    CHECK(!it.valid() && it.key().empty());
    expect_error(BITCASK_NOT_FOUND, [&] { it.value(); });
    db.put("user:4", "later");
    it.rewind();
    std::size_t n = 0;
    for (auto &entry : it) {
        (void)entry;
        n++;
    }
    CHECK(n == 4);

    // An iterator may outlive its database: it ends, and frees cleanly.
    bitcask::Iterator survivor = db.iter();
    CHECK(survivor.valid());
    db.close();
    CHECK(!survivor.valid());
}

static void batches_and_maintenance(const std::string &dir)
{
    bitcask::DB db(dir + "/batch");
    db.put("gone", "x");
    {
        bitcask::Batch b = db.batch();
        b.put("a", "1").put("b", "2").del("gone");
        CHECK(!db.get("a").has_value()); // nothing visible before commit
        b.commit();
        CHECK(db.get("a") == std::string("1") && db.get("b") == std::string("2"));
        CHECK(!db.get("gone").has_value());
        b.put("a", "dropped"); // reused after commit, then dropped uncommitted
        expect_error(BITCASK_INVALID_ARGUMENT, [&] { b.put("", "x"); });
    }
    CHECK(db.get("a") == std::string("1"));

    for (int round = 0; round < 5; round++)
        db.put("counter", std::string(100, static_cast<char>('a' + round)));
    bitcask::Stats before = db.stats();
    CHECK(before.key_count == 3);
    CHECK(before.reclaimable_bytes > 0);
    db.merge();
    CHECK(db.stats().reclaimable_bytes == 0);

    db.backup(dir + "/batch-backup");
    expect_error(BITCASK_INVALID_ARGUMENT, [&] { db.backup(dir + "/batch-backup"); }); // not empty now
    bitcask::DB copy(dir + "/batch-backup");
    CHECK(copy.get("counter") == std::string(100, 'e'));
    CHECK(copy.stats().key_count == 3);

    // A batch outliving its database: commit reports BITCASK_CLOSED.
    bitcask::Batch late = db.batch();
    late.put("x", "y");
    db.close();
    std::string what = expect_error(BITCASK_CLOSED, [&] { late.commit(); });
    CHECK(starts_with(what, "closed: "));
}

static void threads(const std::string &dir)
{
    bitcask::DB db(dir + "/threads");
    enum { THREADS = 4, KEYS = 200 };
    std::vector<std::thread> workers;
    std::vector<int> wrong(THREADS, 0);
    for (int t = 0; t < THREADS; t++) {
        workers.emplace_back([&db, &wrong, t] {
            for (int n = 0; n < KEYS; n++) {
                const std::string key = "t" + std::to_string(t) + ":" + std::to_string(n);
                db.put(key, key + "-value");
                if (db.get(key) != key + "-value")
                    wrong[t]++;
            }
        });
    }
    for (auto &w : workers)
        w.join();
    for (int t = 0; t < THREADS; t++)
        CHECK(wrong[t] == 0);
    CHECK(db.stats().key_count == THREADS * KEYS);
    std::size_t n = 0;
    for (auto &entry : db.iter("t0:")) {
        (void)entry;
        n++;
    }
    CHECK(n == KEYS);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    try {
        core(dir);
        options_and_moves(dir);
        iteration(dir);
        batches_and_maintenance(dir);
        threads(dir);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    std::printf("bitcask.hpp (libbitcask %s): %s\n", std::string(bitcask::version()).c_str(),
                failures == 0 ? "all checks passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}

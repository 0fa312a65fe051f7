/*
 * bitcask.hpp: a header-only C++17 interface to libbitcask, over bitcask.h.
 *
 *   #include <bitcask.hpp>
 *
 *   bitcask::DB db("./my-db", bitcask::Options().sync_writes(true));
 *   db.put("user:1", "alice");
 *   std::optional<std::string> v = db.get("user:1");
 *   for (auto &entry : db.iter("user:")) { entry.key(); entry.value(); }
 *
 * Build: c++ -std=c++17 app.cpp $(pkg-config --cflags --libs bitcask)
 *
 * - Every failure throws bitcask::Error (a std::runtime_error) carrying the
 *   status and the library's last-error text; an absent key is not a
 *   failure (get returns std::nullopt, del succeeds).
 * - Keys and values go in as std::string_view and are passed to the library
 *   as they are; values come out through the library's one copy
 *   (bitcask_get_into, straight into the std::string returned).
 * - DB, Options, Iterator and Batch own their C object: move-only, released
 *   in their destructors. An Iterator or Batch may outlive its DB (it then
 *   reports BITCASK_CLOSED) but not be used by two threads at once; a DB may
 *   be used by any number of threads at once, except close() and the
 *   destructor, which must come last (as with bitcask_close).
 */
#ifndef BITCASK_HPP
#define BITCASK_HPP

#include <bitcask.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace bitcask {

/** A failed libbitcask call: status() is its bitcask_status, what() the
 *  library's detail (bitcask_last_error(), which starts with the kind of
 *  failure, e.g. "locked: ..."). */
class Error : public std::runtime_error {
public:
    Error(bitcask_status status, const std::string &what)
        : std::runtime_error(what), status_(status)
    {
    }
    /** The status code, one of the BITCASK_* values. */
    bitcask_status status() const noexcept { return status_; }

private:
    bitcask_status status_;
};

namespace detail {

/** Throws the Error for a status other than BITCASK_OK. */
inline void check(bitcask_status status)
{
    if (status == BITCASK_OK)
        return;
    // NOT_FOUND and BUFFER_TOO_SMALL set no last error: their name is the detail.
    const char *detail = (status == BITCASK_NOT_FOUND || status == BITCASK_BUFFER_TOO_SMALL)
                             ? bitcask_status_str(status)
                             : bitcask_last_error();
    throw Error(status, (detail != nullptr && *detail != '\0') ? detail : bitcask_status_str(status));
}

} // namespace detail

/** The version of the linked library, "MAJOR.MINOR.PATCH". */
inline std::string_view version() { return bitcask_version(); }

/** The in-memory index kinds (bitcask_options_set_index_type). */
enum class IndexType : bitcask_index_type {
    ordered = BITCASK_INDEX_ORDERED,
    hash = BITCASK_INDEX_HASH,
};

/** Statistics of an open database (bitcask_get_stats). */
using Stats = bitcask_stats;

/** Options for opening a database, every one at its default until set.
 *  Each setter checks its value at once (throwing Error with
 *  BITCASK_INVALID_ARGUMENT) and returns *this, so they chain. */
class Options {
public:
    Options() : opts_(bitcask_options_new())
    {
        if (opts_ == nullptr)
            throw std::bad_alloc();
    }
    ~Options() { bitcask_options_free(opts_); }
    Options(Options &&other) noexcept : opts_(std::exchange(other.opts_, nullptr)) {}
    Options &operator=(Options &&other) noexcept
    {
        if (this != &other) {
            bitcask_options_free(opts_);
            opts_ = std::exchange(other.opts_, nullptr);
        }
        return *this;
    }
    Options(const Options &) = delete;
    Options &operator=(const Options &) = delete;

    Options &data_file_size(std::uint64_t bytes)
    {
        detail::check(bitcask_options_set_data_file_size(opts_, bytes));
        return *this;
    }
    Options &sync_writes(bool on)
    {
        detail::check(bitcask_options_set_sync_writes(opts_, on));
        return *this;
    }
    Options &bytes_per_sync(std::uint64_t bytes)
    {
        detail::check(bitcask_options_set_bytes_per_sync(opts_, bytes));
        return *this;
    }
    Options &mmap_at_startup(bool on)
    {
        detail::check(bitcask_options_set_mmap_at_startup(opts_, on));
        return *this;
    }
    Options &max_batch_bytes(std::uint64_t bytes)
    {
        detail::check(bitcask_options_set_max_batch_bytes(opts_, bytes));
        return *this;
    }
    Options &auto_merge_ratio(double ratio)
    {
        detail::check(bitcask_options_set_auto_merge_ratio(opts_, ratio));
        return *this;
    }
    Options &auto_merge_min_bytes(std::uint64_t bytes)
    {
        detail::check(bitcask_options_set_auto_merge_min_bytes(opts_, bytes));
        return *this;
    }
    Options &checkpoint_bytes(std::uint64_t bytes)
    {
        detail::check(bitcask_options_set_checkpoint_bytes(opts_, bytes));
        return *this;
    }
    Options &index_type(IndexType type)
    {
        detail::check(bitcask_options_set_index_type(opts_, static_cast<bitcask_index_type>(type)));
        return *this;
    }

    /** The C object, still owned by this Options. */
    const bitcask_options *get() const noexcept { return opts_; }

private:
    bitcask_options *opts_;
};

class DB;

/** An ordered snapshot of a database's keys (bitcask_iter), as they were
 *  when DB::iter made it. Usable in a range-for, where each element is the
 *  Iterator itself, at its current key:
 *
 *    for (auto &entry : db.iter("user:", false)) use(entry.key(), entry.value());
 *
 *  key() and value() are views into the iterator's memory, valid until it
 *  moves; copy them (std::string(view)) to keep them. */
class Iterator {
public:
    ~Iterator() { bitcask_iter_free(it_); }
    Iterator(Iterator &&other) noexcept : it_(std::exchange(other.it_, nullptr)) {}
    Iterator &operator=(Iterator &&other) noexcept
    {
        if (this != &other) {
            bitcask_iter_free(it_);
            it_ = std::exchange(other.it_, nullptr);
        }
        return *this;
    }
    Iterator(const Iterator &) = delete;
    Iterator &operator=(const Iterator &) = delete;

    /** Whether it is at a key (false once past the last one, or once its
     *  database is closed). */
    bool valid() const noexcept { return bitcask_iter_valid(it_); }
    /** Moves to the next key. */
    void next() noexcept { bitcask_iter_next(it_); }
    /** Moves back to the first key. */
    void rewind() noexcept { bitcask_iter_rewind(it_); }
    /** Moves to the first key >= key (<= key for a reverse iterator). */
    void seek(std::string_view key) noexcept { bitcask_iter_seek(it_, key.data(), key.size()); }

    /** The current key; empty when not valid(). */
    std::string_view key() const noexcept
    {
        std::size_t len = 0;
        const void *key = bitcask_iter_key(it_, &len);
        return key == nullptr ? std::string_view() : std::string_view(static_cast<const char *>(key), len);
    }
    /** The current value, read from its data file on the first call at a
     *  position; throws Error (BITCASK_NOT_FOUND when not valid()). */
    std::string_view value()
    {
        const void *value = nullptr;
        std::size_t len = 0;
        detail::check(bitcask_iter_value(it_, &value, &len));
        return std::string_view(static_cast<const char *>(value), len);
    }

    /** The end of a range-for: reached when the iterator is no longer valid. */
    struct sentinel {};
    /** The range-for's iterator: dereferences to the Iterator itself. */
    class cursor {
    public:
        explicit cursor(Iterator *it) noexcept : it_(it) {}
        Iterator &operator*() const noexcept { return *it_; }
        Iterator *operator->() const noexcept { return it_; }
        cursor &operator++() noexcept
        {
            it_->next();
            return *this;
        }
        bool operator==(sentinel) const noexcept { return !it_->valid(); }
        bool operator!=(sentinel) const noexcept { return it_->valid(); }

    private:
        Iterator *it_;
    };
    /** Walks from where the iterator stands (its first key, unless moved). */
    cursor begin() noexcept { return cursor(this); }
    sentinel end() const noexcept { return sentinel{}; }

    /** The C object, still owned by this Iterator. */
    bitcask_iter *get() const noexcept { return it_; }

private:
    friend class DB;
    explicit Iterator(bitcask_iter *it) noexcept : it_(it) {}
    bitcask_iter *it_;
};

/** A write batch (bitcask_batch): puts and deletes kept in memory until
 *  commit() makes all of them visible, and durable, together. Dropped
 *  without commit, it changes nothing. Commit empties it for reuse. */
class Batch {
public:
    ~Batch() { bitcask_batch_free(batch_); }
    Batch(Batch &&other) noexcept : batch_(std::exchange(other.batch_, nullptr)) {}
    Batch &operator=(Batch &&other) noexcept
    {
        if (this != &other) {
            bitcask_batch_free(batch_);
            batch_ = std::exchange(other.batch_, nullptr);
        }
        return *this;
    }
    Batch(const Batch &) = delete;
    Batch &operator=(const Batch &) = delete;

    Batch &put(std::string_view key, std::string_view value)
    {
        detail::check(bitcask_batch_put(batch_, key.data(), key.size(), value.data(), value.size()));
        return *this;
    }
    Batch &del(std::string_view key)
    {
        detail::check(bitcask_batch_delete(batch_, key.data(), key.size()));
        return *this;
    }
    void commit() { detail::check(bitcask_batch_commit(batch_)); }

    /** The C object, still owned by this Batch. */
    bitcask_batch *get() const noexcept { return batch_; }

private:
    friend class DB;
    explicit Batch(bitcask_batch *batch) noexcept : batch_(batch) {}
    bitcask_batch *batch_;
};

/** An open database (bitcask_db). Opening throws Error on failure
 *  (BITCASK_LOCKED if another opener holds the directory); the destructor
 *  closes it (syncs, unlocks, frees), ignoring a failure of that final
 *  sync: call close() first to see it. */
class DB {
public:
    /** Opens (creating if missing) the database in directory path. */
    explicit DB(const std::string &path) { detail::check(bitcask_open(path.c_str(), nullptr, &db_)); }
    DB(const std::string &path, const Options &options)
    {
        detail::check(bitcask_open(path.c_str(), options.get(), &db_));
    }
    ~DB() { bitcask_close(db_); }
    DB(DB &&other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
    DB &operator=(DB &&other) noexcept
    {
        if (this != &other) {
            bitcask_close(db_);
            db_ = std::exchange(other.db_, nullptr);
        }
        return *this;
    }
    DB(const DB &) = delete;
    DB &operator=(const DB &) = delete;

    /** Closes now; the handle is gone even when this throws (the final sync
     *  failed). Later calls throw BITCASK_INVALID_ARGUMENT. */
    void close() { detail::check(bitcask_close(std::exchange(db_, nullptr))); }

    void put(std::string_view key, std::string_view value)
    {
        detail::check(bitcask_put(db_, key.data(), key.size(), value.data(), value.size()));
    }

    /** The value of key, or std::nullopt if it is absent. */
    std::optional<std::string> get(std::string_view key)
    {
        std::string value;
        if (!get_into(key, value))
            return std::nullopt;
        return value;
    }

    /** Reads the value of key into out, reusing its capacity (grown if
     *  needed): true if found; false, with out empty, if the key is absent. */
    bool get_into(std::string_view key, std::string &out)
    {
        out.resize(out.capacity());
        for (;;) {
            std::size_t len = 0;
            bitcask_status s = bitcask_get_into(db_, key.data(), key.size(), out.data(), out.size(), &len);
            if (s == BITCASK_BUFFER_TOO_SMALL) { // len is the size needed: grow and read again
                out.resize(len);
                continue;
            }
            if (s != BITCASK_OK) {
                out.clear();
                if (s == BITCASK_NOT_FOUND)
                    return false;
                detail::check(s);
            }
            out.resize(len);
            return true;
        }
    }

    /** Reads the value of key into buf (buf_len bytes): std::nullopt if the
     *  key is absent, otherwise the value's length, and the value was
     *  written only if that length is <= buf_len. */
    std::optional<std::size_t> get_into(std::string_view key, void *buf, std::size_t buf_len)
    {
        std::size_t len = 0;
        bitcask_status s = bitcask_get_into(db_, key.data(), key.size(), buf, buf_len, &len);
        if (s == BITCASK_NOT_FOUND)
            return std::nullopt;
        if (s != BITCASK_BUFFER_TOO_SMALL)
            detail::check(s);
        return len;
    }

    /** Deletes key; an absent key is not an error. */
    void del(std::string_view key) { detail::check(bitcask_delete(db_, key.data(), key.size())); }

    /** Makes every write so far durable. */
    void sync() { detail::check(bitcask_sync(db_)); }

    /** An ordered snapshot of the keys starting with prefix (all keys for
     *  an empty prefix), ascending, or descending if reverse. */
    Iterator iter(std::string_view prefix = {}, bool reverse = false)
    {
        bitcask_iter *it = nullptr;
        detail::check(bitcask_iter_new(db_, prefix.data(), prefix.size(), reverse, &it));
        return Iterator(it);
    }

    /** An empty write batch for this database. */
    Batch batch()
    {
        bitcask_batch *batch = nullptr;
        detail::check(bitcask_batch_new(db_, &batch));
        return Batch(batch);
    }

    Stats stats()
    {
        Stats stats{};
        detail::check(bitcask_get_stats(db_, &stats));
        return stats;
    }

    /** Frees the space of overwritten and deleted records, online. */
    void merge() { detail::check(bitcask_merge(db_)); }

    /** Writes a consistent copy into dest_dir (missing or empty). */
    void backup(const std::string &dest_dir) { detail::check(bitcask_backup(db_, dest_dir.c_str())); }

    /** The C handle, still owned by this DB. */
    bitcask_db *get() const noexcept { return db_; }

private:
    bitcask_db *db_ = nullptr;
};

} // namespace bitcask

#endif /* BITCASK_HPP */

// What shardurl tells its operator: one line per event on stderr, each with a time stamp, as text
// for a person or as one JSON object per line for a log collector; and, when asked for, one line
// per request (the access log, server/access_log.hpp).
//
// Callable from any thread: a line is written with one write(2), under a lock, so lines from
// several workers never interleave. Event logging is for events (a shard going down, a failed
// request), never for the normal request path; the access log batches its lines per worker.
#pragma once

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>

namespace shardurl::log {

enum class Level { info, warning, error };
enum class Format { text, json };

/// What the config file's "log" object sets (docs/configuration.md).
struct Settings {
  Format format = Format::text;
  bool access = false;  // one line per request
};

/// One named value of an event, for the JSON format (the text format shows the message only, so
/// the message must say everything a person needs).
struct Field {
  std::string_view key;
  std::string_view value;
};

/// How lines are written from now on, and whether requests are logged: any thread, at any time
/// (a reload). Lines being written meanwhile keep the settings they started with; an access line
/// already in a worker's buffer is written in the format it was made in.
void apply(const Settings& settings);

/// How lines are written from now on (text by default). Any thread.
void set_format(Format format);
[[nodiscard]] Format format() noexcept;

namespace detail {
inline std::atomic<bool> access_on{false};
}
/// Whether each request gets an access line (off by default). Any thread; a relaxed load, cheap
/// enough for every request.
inline void set_access(bool on) noexcept {
  detail::access_on.store(on, std::memory_order_relaxed);
}
[[nodiscard]] inline bool access() noexcept {
  return detail::access_on.load(std::memory_order_relaxed);
}

/// Writes one line: "2026-12-02T05:29:21.123Z shardurl: MESSAGE" as text, or
/// {"ts":"...","level":"...","msg":"...",KEY:VALUE,...} as JSON.
void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

inline void info(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(Level::info, message, fields);
}
inline void warning(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(Level::warning, message, fields);
}
inline void error(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(Level::error, message, fields);
}

/// Like write(), for events that can happen once per request (a shard's 503s while it is down):
/// at most one line per `key` per `every`; the next line written for the key says how many were
/// left out since the last one, so every event is accounted for without flooding the log.
void throttled(std::string_view key, Level level, std::string_view message,
               std::initializer_list<Field> fields = {},
               std::chrono::milliseconds every = std::chrono::seconds(1));

/// Writes `lines` (whole lines, each ending in '\n') as they are, with one write(2) under the
/// lock every line takes: the access log's batches.
void write_lines(std::string_view lines);

/// The RFC 3339 UTC time stamp with milliseconds that lines carry, e.g. 2026-12-02T05:29:21.123Z.
std::string timestamp(std::chrono::system_clock::time_point when);

/// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped,
/// valid UTF-8 kept as it is, and every byte that is not part of valid UTF-8 written as \u00XX,
/// so that the line stays valid JSON whatever bytes a client sent.
void append_json_string(std::string& out, std::string_view text);

/// The same, written at `out`, which must have room for json_string_bound(text.size()) bytes;
/// returns the end of what was written.
char* write_json_string(char* out, std::string_view text) noexcept;
constexpr std::size_t json_string_bound(std::size_t bytes) noexcept {
  return 2 + 6 * bytes;  // quotes, and \u00XX at worst per byte
}

/// Appends `text` for the text format: CR and LF become spaces (one event, one line), and other
/// control characters (C0, DEL, C1) and bytes that are not part of valid UTF-8 are written as
/// \xHH, so no line carries a raw control character.
void append_text(std::string& out, std::string_view text);

}  // namespace shardurl::log

// What shardurl tells its operator: one line per event on stderr, each with a time stamp, as text
// for a person or as one JSON object per line for a log collector.
//
// Callable from any thread: a line is written with one write(2), under a lock, so lines from
// several workers never interleave. Logging is for events (a shard going down, a failed request),
// never for the normal request path.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>

namespace shardurl::log {

enum class Level { info, warning, error };
enum class Format { text, json };

/// One named value of an event, for the JSON format (the text format shows the message only, so
/// the message must say everything a person needs).
struct Field {
  std::string_view key;
  std::string_view value;
};

/// How lines are written from now on (text by default).
void set_format(Format format);

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

/// The RFC 3339 UTC time stamp with milliseconds that lines carry, e.g. 2026-12-02T05:29:21.123Z.
std::string timestamp(std::chrono::system_clock::time_point when);

}  // namespace shardurl::log

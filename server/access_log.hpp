// The access log: one line per answered request, when the config's "log.access" is on (or
// log::set_access turns it on at run time).
//
// Each worker formats its lines into a buffer of its own and writes the buffer with one write(2)
// (log::write_lines) when it holds flush_bytes, or flush_every after its first line, whichever
// comes first: at 20,000 requests a second that is a write every few hundred requests instead of
// one per request, and the workers never take the log's lock per request. A line thus reaches
// stderr at most flush_every late; a process killed with SIGKILL loses at most that much of the
// log. Like every log line, a batch is written synchronously: a stderr that does not drain stalls
// the worker that writes to it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "log.hpp"

namespace shardurl {

/// One request as the access log shows it.
struct AccessEntry {
  std::string_view method;  // empty: unknown (refused before its request line was understood)
  std::string_view target;  // the request target as sent (path and query); empty: unknown
  unsigned status = 0;
  std::uint64_t duration_ns = 0;  // from the request read to its answer written
  std::size_t bytes = 0;          // the answer's bytes, status line and headers included
  std::string_view shard;         // the shard that owns the link; empty: no shard involved
};

/// Appends the line for `entry`, made at `now`, in `format`:
///   text: 2026-12-02T05:29:21.123Z shardurl: access method=GET path=/abc status=302 bytes=151
///         duration_ms=0.042 shard=5433
///   json: {"ts":"2026-12-02T05:29:21.123Z","level":"info","msg":"access","method":"GET",
///          "path":"/abc","status":302,"bytes":151,"duration_ms":0.042,"shard":"5433"}
/// Unknown values are "-" in text and null in JSON; shard is left out when none was involved.
/// The path is JSON-escaped (log::append_json_string); in text every byte outside printable
/// ASCII, and the backslash, is written as \xHH, so a path can hold no space or control character.
void append_access_line(std::string& out, log::Format format, const AccessEntry& entry,
                        std::chrono::system_clock::time_point now);

/// One worker's access log. Only touched on that worker's thread (the destructor excepted, which
/// runs once the worker's loop has stopped).
class AccessLog {
 public:
  static constexpr std::size_t flush_bytes = 32 * 1024;
  static constexpr std::chrono::milliseconds flush_every{100};

  explicit AccessLog(boost::asio::any_io_executor executor);
  ~AccessLog();  // writes what is left
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void add(const AccessEntry& entry);

  /// Writes the buffered lines now.
  void flush();

 private:
  std::string buffer_;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
};

}  // namespace shardurl

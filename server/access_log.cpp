#include "access_log.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

using namespace std::string_view_literals;

namespace shardurl {
namespace {

// Writes at a pointer into room reserved beforehand (line_bound): an access line is one resize
// and plain copies, not an append with its capacity check per piece.
struct Writer {
  char* p;

  void put(std::string_view text) noexcept {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  }
  void put(char c) noexcept { *p++ = c; }

  void number(std::uint64_t n) noexcept { p = std::to_chars(p, p + 20, n).ptr; }

  // Milliseconds with three decimals (microseconds), from nanoseconds.
  void milliseconds(std::uint64_t ns) noexcept {
    const std::uint64_t us = ns / 1000;
    number(us / 1000);
    const auto frac = static_cast<unsigned>(us % 1000);
    put('.');
    put(static_cast<char>('0' + frac / 100));
    put(static_cast<char>('0' + frac / 10 % 10));
    put(static_cast<char>('0' + frac % 10));
  }

  // log::timestamp's text, its seconds formatted once a second per thread rather than per line.
  void timestamp(std::chrono::system_clock::time_point now) {
    thread_local std::time_t formatted_at = -1;
    thread_local std::array<char, 32> text{};
    thread_local std::size_t length = 0;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    const auto seconds = static_cast<std::time_t>(ms.count() / 1000);
    if (seconds != formatted_at) {
      std::tm utc{};
      gmtime_r(&seconds, &utc);
      length = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &utc);
      formatted_at = seconds;
    }
    put(std::string_view(text.data(), length));
    const auto milli = static_cast<unsigned>(ms.count() % 1000);
    put('.');
    put(static_cast<char>('0' + milli / 100));
    put(static_cast<char>('0' + milli / 10 % 10));
    put(static_cast<char>('0' + milli % 10));
    put('Z');
  }

  // Printable ASCII but the backslash as it is (in runs), every other byte as \xHH: no space,
  // no control character, and nothing ambiguous.
  void text_path(std::string_view path) noexcept {
    constexpr char hex[] = "0123456789abcdef";
    std::size_t run = 0;
    for (std::size_t i = 0; i < path.size(); ++i) {
      const auto b = static_cast<unsigned char>(path[i]);
      if (b > 0x20 && b < 0x7f && b != '\\') continue;
      put(path.substr(run, i - run));
      put('\\');
      put('x');
      put(hex[b >> 4]);
      put(hex[b & 0xf]);
      run = i + 1;
    }
    put(path.substr(run));
  }

  void json_or_null(std::string_view text) noexcept {
    if (text.empty()) {
      put("null"sv);
    } else {
      p = log::write_json_string(p, text);
    }
  }
  void text_or_dash(std::string_view text) noexcept {
    if (text.empty()) {
      put('-');
    } else {
      text_path(text);
    }
  }
};

// The most bytes a line for `entry` can take: the fixed text, three numbers of up to 20 digits,
// and each string escaped at its worst (\u00XX, 6 bytes a byte).
std::size_t line_bound(const AccessEntry& e) noexcept {
  return 256 + log::json_string_bound(e.method.size() + e.target.size() + e.shard.size());
}

}  // namespace

void append_access_line(std::string& out, log::Format format, const AccessEntry& entry,
                        std::chrono::system_clock::time_point now) {
  const std::size_t used = out.size();
  out.resize(used + line_bound(entry));
  Writer w{out.data() + used};
  if (format == log::Format::json) {
    w.put(R"({"ts":")"sv);
    w.timestamp(now);
    w.put(R"(","level":"info","msg":"access","method":)"sv);
    w.json_or_null(entry.method);
    w.put(R"(,"path":)"sv);
    w.json_or_null(entry.target);
    w.put(R"(,"status":)"sv);
    w.number(entry.status);
    w.put(R"(,"bytes":)"sv);
    w.number(entry.bytes);
    w.put(R"(,"duration_ms":)"sv);
    w.milliseconds(entry.duration_ns);
    if (!entry.shard.empty()) {
      w.put(R"(,"shard":)"sv);
      w.p = log::write_json_string(w.p, entry.shard);
    }
    w.put("}\n"sv);
  } else {
    w.timestamp(now);
    w.put(" shardurl: access method="sv);
    w.text_or_dash(entry.method);
    w.put(" path="sv);
    w.text_or_dash(entry.target);
    w.put(" status="sv);
    w.number(entry.status);
    w.put(" bytes="sv);
    w.number(entry.bytes);
    w.put(" duration_ms="sv);
    w.milliseconds(entry.duration_ns);
    if (!entry.shard.empty()) {
      w.put(" shard="sv);
      w.text_path(entry.shard);
    }
    w.put('\n');
  }
  out.resize(static_cast<std::size_t>(w.p - out.data()));
}

AccessLog::AccessLog(boost::asio::any_io_executor executor) : timer_(std::move(executor)) {
  buffer_.reserve(flush_bytes + 1024);
}

AccessLog::~AccessLog() {
  flush();
}

void AccessLog::add(const AccessEntry& entry) {
  append_access_line(buffer_, log::format(), entry, std::chrono::system_clock::now());
  if (buffer_.size() >= flush_bytes) {
    flush();
    return;
  }
  if (armed_) return;
  armed_ = true;
  timer_.expires_after(flush_every);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    // Cancelled only by the destructor: `this` is gone then.
    if (ec) return;
    armed_ = false;
    flush();
  });
}

void AccessLog::flush() {
  log::write_lines(buffer_);
  buffer_.clear();
}

}  // namespace shardurl

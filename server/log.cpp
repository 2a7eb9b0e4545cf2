#include "log.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

namespace shardurl::log {
namespace {

std::atomic<Format> current_format{Format::text};
std::mutex write_mutex;

struct Suppressed {
  std::chrono::steady_clock::time_point last;
  std::uint64_t left_out = 0;
};
std::mutex throttle_mutex;
std::unordered_map<std::string, Suppressed> throttle_state;

std::string_view level_name(Level level) {
  switch (level) {
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "info";
}

// The length of the valid UTF-8 sequence at the start of `s` (1 to 4), or 0 when it does not start
// with one (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, cut short).
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto byte = [&s](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;  // the range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    if (b0 == 0xe0) low = 0xa0;
    if (b0 == 0xed) high = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    if (b0 == 0xf0) low = 0x90;
    if (b0 == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return length;
}

constexpr char hex_digits[] = "0123456789abcdef";

// Bytes a JSON string holds as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> json_plain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return t;
}();

void append_escaped_byte(std::string& out, std::string_view prefix, unsigned char c) {
  out += prefix;
  out += hex_digits[c >> 4];
  out += hex_digits[c & 0xf];
}

void emit(std::string_view line) {
  const std::lock_guard lock(write_mutex);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;  // nowhere to log to: nothing else to do
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

void write_line(Level level, std::string_view message, std::span<const Field> fields,
                const Field* extra);

std::string timestamp(std::chrono::system_clock::time_point when) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return text;
}

void set_format(Format format) {
  current_format.store(format, std::memory_order_relaxed);
}

Format format() noexcept {
  return current_format.load(std::memory_order_relaxed);
}

void apply(const Settings& settings) {
  set_format(settings.format);
  set_access(settings.access);
}

void write_lines(std::string_view lines) {
  if (!lines.empty()) emit(lines);
}

char* write_json_string(char* out, std::string_view text) noexcept {
  *out++ = '"';
  // Runs of bytes that need no escape are copied whole: an access line's path is one run.
  std::size_t run = 0;
  std::size_t i = 0;
  const auto copy = [&out](const char* from, std::size_t n) {
    std::memcpy(out, from, n);
    out += n;
  };
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (json_plain[c]) {
      ++i;
      continue;
    }
    copy(text.data() + run, i - run);
    const std::size_t length = c < 0x80 ? 1 : utf8_sequence(text.substr(i));
    if (length > 1) {
      copy(text.data() + i, length);
      i += length;
    } else {
      *out++ = '\\';
      switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
          // Control characters, DEL, and bytes that are no part of valid UTF-8 (as U+00XX).
          copy("u00", 3);
          *out++ = hex_digits[c >> 4];
          *out++ = hex_digits[c & 0xf];
      }
      ++i;
    }
    run = i;
  }
  copy(text.data() + run, text.size() - run);
  *out++ = '"';
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  const std::size_t used = out.size();
  out.resize(used + json_string_bound(text.size()));
  char* end = write_json_string(out.data() + used, text);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

void append_text(std::string& out, std::string_view text) {
  while (!text.empty()) {
    const auto c = static_cast<unsigned char>(text.front());
    const std::size_t length = utf8_sequence(text);
    // U+0080 to U+009F (C2 80 to C2 9F) are the C1 control characters.
    const bool c1 = length == 2 && c == 0xc2 && static_cast<unsigned char>(text[1]) < 0xa0;
    if (length > 1 && !c1) {
      out.append(text.data(), length);
      text.remove_prefix(length);
      continue;
    }
    if (c1) {
      append_escaped_byte(out, "\\x", c);
      append_escaped_byte(out, "\\x", static_cast<unsigned char>(text[1]));
      text.remove_prefix(2);
      continue;
    }
    text.remove_prefix(1);
    if (c == '\n' || c == '\r') {
      out += ' ';
    } else if (length == 0 || c < 0x20 || c == 0x7f) {
      append_escaped_byte(out, "\\x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
}

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  write_line(level, message, fields, nullptr);
}

void write_line(Level level, std::string_view message, std::span<const Field> fields,
                const Field* extra) {
  const std::string ts = timestamp(std::chrono::system_clock::now());
  std::string line;
  line.reserve(64 + message.size());
  if (current_format.load(std::memory_order_relaxed) == Format::json) {
    line += R"({"ts":")";
    line += ts;
    line += R"(","level":")";
    line += level_name(level);
    line += R"(","msg":)";
    append_json_string(line, message);
    const auto add = [&line](const Field& field) {
      line += ',';
      append_json_string(line, field.key);
      line += ':';
      append_json_string(line, field.value);
    };
    for (const auto& field : fields) add(field);
    if (extra != nullptr) add(*extra);
    line += "}\n";
  } else {
    line += ts;
    line += " shardurl: ";
    append_text(line, message);
    line += '\n';
  }
  emit(line);
}

void throttled(std::string_view key, Level level, std::string_view message,
               std::initializer_list<Field> fields, std::chrono::milliseconds every) {
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t left_out = 0;
  {
    const std::lock_guard lock(throttle_mutex);
    auto [it, fresh] = throttle_state.try_emplace(std::string(key));
    Suppressed& state = it->second;
    if (!fresh && now - state.last < every) {
      ++state.left_out;
      return;
    }
    left_out = state.left_out;
    state.left_out = 0;
    state.last = now;
  }
  if (left_out == 0) {
    write(level, message, fields);
    return;
  }
  const std::string count = std::to_string(left_out);
  const std::string text =
      std::string(message) + " (and " + count + " more like it since the last such line)";
  const Field extra{"left_out", count};
  write_line(level, text, fields, &extra);
}

}  // namespace shardurl::log

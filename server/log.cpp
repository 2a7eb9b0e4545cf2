#include "log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
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

// A JSON string literal for `text` (control characters escaped, bytes >= 0x80 kept as they are).
void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void emit(const std::string& line) {
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
    for (const char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;  // one event, one line
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

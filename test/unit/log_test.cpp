// Log lines stay one line and, in JSON, valid JSON, whatever bytes a client or a server put in
// them; access lines carry their fields.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <regex>
#include <string>

#include "access_log.hpp"
#include "log.hpp"

namespace json = boost::json;
using shardurl::AccessEntry;
using shardurl::append_access_line;
namespace slog = shardurl::log;

namespace {

std::string json_of(std::string_view text) {
  std::string out;
  slog::append_json_string(out, text);
  return out;
}

std::string text_of(std::string_view text) {
  std::string out;
  slog::append_text(out, text);
  return out;
}

bool has_raw_control(std::string_view line) {
  for (const char c : line) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return true;
  }
  return false;
}

// 2026-12-02T05:29:21.123Z
const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796189361123));

}  // namespace

TEST_CASE("JSON strings escape quotes, backslashes and control characters and keep UTF-8") {
  CHECK(json_of("plain") == "\"plain\"");
  CHECK(json_of("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json_of("\n\r\t") == R"("\n\r\t")");
  CHECK(json_of(std::string("\x01\x1f\x7f", 3)) == R"("\u0001\u001f\u007f")");
  CHECK(json_of(std::string("nul\0x", 5)) == R"("nul\u0000x")");
  CHECK(json_of("é€𝄞") == "\"é€𝄞\"");
}

TEST_CASE("bytes that are not UTF-8 become \\u00XX, so the line stays valid JSON") {
  CHECK(json_of("\xff") == R"("\u00ff")");
  CHECK(json_of("a\xc3") == R"("a\u00c3")");                              // cut short
  CHECK(json_of("\xc0\xaf") == R"("\u00c0\u00af")");                      // overlong '/'
  CHECK(json_of("\xed\xa0\x80") == R"("\u00ed\u00a0\u0080")");            // a surrogate
  CHECK(json_of("\xf4\x90\x80\x80") == R"("\u00f4\u0090\u0080\u0080")");  // beyond U+10FFFF
  CHECK(json_of("\x80é") == "\"\\u0080é\"");
  for (const std::string_view nasty : {std::string_view("\xff\xfe\"\\\x01"),
                                       std::string_view("\xe2\x82"), std::string_view("ok")}) {
    boost::system::error_code ec;
    json::parse(json_of(nasty), ec);
    CHECK_FALSE(ec);
  }
}

TEST_CASE("text keeps one line and no raw control character") {
  CHECK(text_of("shard 5433: down (a\nb\r)") == "shard 5433: down (a b )");
  CHECK(text_of("tab\there") == "tab\\x09here");
  CHECK(text_of("esc\x1b[31m") == "esc\\x1b[31m");
  CHECK(text_of("del\x7f") == "del\\x7f");
  CHECK(text_of("\xc2\x85next line") == "\\xc2\\x85next line");  // U+0085, a C1 control
  CHECK(text_of("é and \xff") == "é and \\xff");
}

TEST_CASE("an access line in JSON has the time stamp, level, message and the request's fields") {
  AccessEntry entry;
  entry.method = "GET";
  entry.target = "/abc?x=\"1\"\\\x01\xff";
  entry.status = 302;
  entry.duration_ns = 1'234'567;
  entry.bytes = 151;
  entry.shard = "5433";
  std::string line;
  append_access_line(line, slog::Format::json, entry, when);
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  CHECK_FALSE(has_raw_control(line.substr(0, line.size() - 1)));
  const auto doc = json::parse(line).as_object();
  CHECK(doc.at("ts") == "2026-12-02T05:29:21.123Z");
  CHECK(doc.at("level") == "info");
  CHECK(doc.at("msg") == "access");
  CHECK(doc.at("method") == "GET");
  CHECK(doc.at("path") == "/abc?x=\"1\"\\\x01\u00ff");
  CHECK(doc.at("status") == 302);
  CHECK(doc.at("bytes") == 151);
  CHECK(doc.at("duration_ms").to_number<double>() == Approx(1.234));
  CHECK(doc.at("shard") == "5433");

  AccessEntry refused;
  refused.status = 400;
  std::string bare;
  append_access_line(bare, slog::Format::json, refused, when);
  const auto doc2 = json::parse(bare).as_object();
  CHECK(doc2.at("method").is_null());
  CHECK(doc2.at("path").is_null());
  CHECK(doc2.at("duration_ms").to_number<double>() == 0.0);
  CHECK_FALSE(doc2.contains("shard"));
}

TEST_CASE("an access line in text has a time stamp, key=value fields and an escaped path") {
  AccessEntry entry;
  entry.method = "GET";
  entry.target = "/a b\\\x01\xc3\xa9";
  entry.status = 404;
  entry.duration_ns = 42'000;
  entry.bytes = 188;
  std::string line;
  append_access_line(line, slog::Format::text, entry, when);
  CHECK(line ==
        "2026-12-02T05:29:21.123Z shardurl: access method=GET path=/a\\x20b\\x5c\\x01\\xc3\\xa9 "
        "status=404 bytes=188 duration_ms=0.042\n");
  entry.shard = "5432";
  entry.duration_ns = 12'345'678'901;
  line.clear();
  append_access_line(line, slog::Format::text, entry, when);
  CHECK_THAT(line, Catch::Matchers::EndsWith(" duration_ms=12345.678 shard=5432\n"));
  AccessEntry refused;
  refused.status = 431;
  line.clear();
  append_access_line(line, slog::Format::text, refused, when);
  CHECK_THAT(line, Catch::Matchers::Contains("access method=- path=- status=431 bytes=0"));
}

TEST_CASE("log settings change at run time") {
  const slog::Format before = slog::format();
  const bool access = slog::access();
  slog::apply({slog::Format::json, true});
  CHECK(slog::format() == slog::Format::json);
  CHECK(slog::access());
  slog::apply({slog::Format::text, false});
  CHECK(slog::format() == slog::Format::text);
  CHECK_FALSE(slog::access());
  slog::apply({before, access});
}

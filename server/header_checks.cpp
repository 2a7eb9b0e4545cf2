#include "header_checks.hpp"

namespace shardurl {
namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `f` with each non-empty member of a comma-separated field value, trimmed (RFC 9110
// section 5.6.1: empty members are allowed and ignored).
template <class F>
void for_each_member(std::string_view list, F&& f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view member = trim(list.substr(0, comma));
    list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    if (!member.empty()) f(member);
  }
}

// The 405's Allow for '*' and host:port: every method the server takes somewhere.
constexpr std::string_view server_allow = "Allow: GET, HEAD, POST, DELETE";
static_assert(server_allow.substr(7) == server_methods);

bool iequals_ascii(std::string_view a, std::string_view lower) noexcept {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char c = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<HeaderProblem> header_problem(std::string_view block, std::size_t max_fields) {
  // Leading blank lines before the request line are allowed (RFC 9112 section 2.2).
  while (block.starts_with("\r\n")) block.remove_prefix(2);
  std::size_t fields = 0;
  std::size_t line_start = block.find("\r\n");
  while (line_start != std::string_view::npos && line_start + 2 < block.size()) {
    line_start += 2;
    const char first = block[line_start];
    if (first == '\r') break;  // the blank line that ends the header
    if (first == ' ' || first == '\t') {
      return HeaderProblem{400, "folded header lines (obs-fold) are not accepted"};
    }
    if (++fields > max_fields) {
      return HeaderProblem{431, "more than " + std::to_string(max_fields) + " header fields"};
    }
    line_start = block.find("\r\n", line_start);
  }
  return std::nullopt;
}

void RequestHead::transfer_encoding(std::string_view value) noexcept {
  transfer_encoding_ = true;
  unusual_ = true;
  // Whether chunked comes last, and only once, is Beast's to say (problem()'s `chunked`); any
  // other coding is one shardurl does not implement.
  for_each_member(value, [this](std::string_view coding) {
    const std::string_view name = trim(coding.substr(0, coding.find(';')));
    if (!iequals_ascii(name, "chunked")) other_transfer_coding_ = true;
  });
}

void RequestHead::content_encoding(std::string_view value) noexcept {
  for_each_member(value, [this](std::string_view coding) {
    if (!iequals_ascii(coding, "identity")) content_coded_ = unusual_ = true;
  });
}

void RequestHead::expect(std::string_view value) noexcept {
  for_each_member(value, [this](std::string_view expectation) {
    if (iequals_ascii(expectation, "100-continue")) {
      expects_continue_ = true;
    } else {
      other_expectation_ = unusual_ = true;
    }
  });
}

std::optional<HeaderProblem> RequestHead::judge(bool chunked, bool body_follows) const {
  if (hosts_ == 0 && version_ >= 11) {
    return HeaderProblem{400, "an HTTP/1.1 request must have a Host header"};
  }
  if (hosts_ > 1) return HeaderProblem{400, "a request must not have more than one Host header"};
  if (!host_valid_) return HeaderProblem{400, "the Host header is not a valid host[:port]"};
  if (transfer_encoding_) {
    if (version_ < 11) {
      return HeaderProblem{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request"};
    }
    if (!chunked) {
      return HeaderProblem{400, "Transfer-Encoding must end with chunked, applied once"};
    }
    if (other_transfer_coding_) {
      return HeaderProblem{501, "only the chunked transfer coding is implemented"};
    }
  }
  if (server_wide_) {
    return HeaderProblem{405, "OPTIONS * and CONNECT are not served (shardurl is not a proxy)",
                         server_allow};
  }
  if (version_ >= 11 && other_expectation_) {
    return HeaderProblem{417, "only the expectation 100-continue is supported"};
  }
  if (body_follows && content_coded_) {
    return HeaderProblem{415, "a request body must not have a Content-Encoding (send it as is)",
                         "Accept-Encoding: identity"};
  }
  return std::nullopt;
}

}  // namespace shardurl

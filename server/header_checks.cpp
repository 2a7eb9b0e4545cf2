#include "header_checks.hpp"

namespace shardurl {

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

}  // namespace shardurl

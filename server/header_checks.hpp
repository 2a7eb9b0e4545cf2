// Checks on a request's raw header block that Beast's parser does not make, run before the header
// is parsed and before any body is read.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shardurl {

struct HeaderProblem {
  unsigned status;  // 400 or 431
  std::string detail;
};

/// `block` is everything up to and including the blank line that ends the header. Refuses:
///  - obs-fold (a line starting with a space or tab): RFC 9112 lets a server unfold it, but
///    proxies disagree on how, which is how requests get smuggled; 400.
///  - more than `max_fields` header lines; 431.
std::optional<HeaderProblem> header_problem(std::string_view block, std::size_t max_fields);

}  // namespace shardurl

// Checks on a request's head that Beast's parser does not make, run before any body is read: on
// the raw header block before it is parsed (header_problem), and on the parsed request line and
// fields (RequestHead), where RFC 9110 and RFC 9112 decide an answer from the head alone.
#pragma once

#include <boost/beast/http/field.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "request_target.hpp"

namespace shardurl {

struct HeaderProblem {
  unsigned status;  // 400, 405, 415, 417, 431 or 501
  std::string detail;
  /// A header line the answer carries besides the usual ones ("Allow: ..."), without CRLF; or
  /// empty. Always one of this file's constants, never bytes from the client.
  std::string_view header = {};
};

/// `block` is everything up to and including the blank line that ends the header. Refuses:
///  - obs-fold (a line starting with a space or tab): RFC 9112 lets a server unfold it, but
///    proxies disagree on how, which is how requests get smuggled; 400.
///  - more than `max_fields` header lines; 431.
std::optional<HeaderProblem> header_problem(std::string_view block, std::size_t max_fields);

/// Every method some route takes: the Allow header of a 405 for a target that names no resource
/// but the server ('*', host:port). test/unit checks it against the route table.
inline constexpr std::string_view server_methods = "GET, HEAD, POST, DELETE";

/// The head of one parsed request, fed the request line and then the value of every Host,
/// Transfer-Encoding, Content-Encoding and Expect field line as it came (Beast has checked their
/// syntax as field values and trimmed them). Each call is a scan of a few bytes that allocates
/// nothing; a problem's detail is only built when there is one. The common head (origin-form,
/// one valid Host, no codings, no expectation other than 100-continue) is judged inline.
class RequestHead {
 public:
  /// The request's version (10 or 11), method and target as Beast parsed them.
  RequestHead(unsigned version, std::string_view method, std::string_view target) noexcept
      : version_(version) {
    // Origin-form, the common case, costs one comparison.
    if (!target.empty() && target.front() != '/') {
      server_wide_ = (method == "OPTIONS" && target == "*") || method == "CONNECT";
      unusual_ = server_wide_;
    }
  }

  void host(std::string_view value) noexcept {
    ++hosts_;
    host_valid_ = host_valid_ && is_host_and_port(value);
  }
  void transfer_encoding(std::string_view value) noexcept;
  void content_encoding(std::string_view value) noexcept;
  void expect(std::string_view value) noexcept;

  /// The answer the head already decides, before the body is read, checked in this order (the
  /// first wins); nullopt when the body may be read and the request routed. `chunked`: Beast
  /// found the final transfer coding to be chunked; `body_follows`: the framing announces a body
  /// (Content-Length above 0, or chunked).
  ///  1. 400 for an HTTP/1.1 request without Host, any request with two Host field lines or a
  ///     Host that is not is_host_and_port() (RFC 9112 section 3.2). An empty Host is valid.
  ///  2. 400 for Transfer-Encoding whose final coding is not chunked, or any Transfer-Encoding in
  ///     HTTP/1.0 (RFC 9112 sections 6.1 and 6.3: the body's end is unknown, guessing it is how
  ///     requests get smuggled); 501 for a coding besides chunked ("gzip, chunked"): RFC 9112
  ///     section 6.1, shardurl implements no other transfer coding.
  ///  3. 405 with Allow: server_methods for OPTIONS * and for CONNECT host:port: the forms are
  ///     right (RFC 9112 sections 3.2.3 and 3.2.4), the methods are not served. Other methods
  ///     with those forms are left to parse_target, which refuses them with 400.
  ///  4. 417 for an expectation other than 100-continue in HTTP/1.1 (RFC 9110 section 10.1.1);
  ///     HTTP/1.0 requests' Expect is ignored.
  ///  5. 415 with Accept-Encoding: identity for a body with a content coding other than identity
  ///     (RFC 9110 section 15.5.16): a gzip-compressed JSON body is not JSON to shardurl.
  [[nodiscard]] std::optional<HeaderProblem> problem(bool chunked, bool body_follows) const {
    if (hosts_ == 1 && host_valid_ && !unusual_) return std::nullopt;
    return judge(chunked, body_follows);
  }

  /// True when the client waits for "100 Continue" before it sends the body: an HTTP/1.1
  /// request that expects 100-continue and announces a body. Meaningful when problem() is
  /// nullopt; otherwise its final answer goes instead.
  [[nodiscard]] bool expects_continue(bool body_follows) const noexcept {
    return version_ >= 11 && expects_continue_ && body_follows;
  }

 private:
  [[nodiscard]] std::optional<HeaderProblem> judge(bool chunked, bool body_follows) const;

  unsigned version_;
  bool unusual_ = false;      // anything but Host that problem() must look at
  bool server_wide_ = false;  // OPTIONS * or CONNECT host:port
  unsigned hosts_ = 0;
  bool host_valid_ = true;
  bool transfer_encoding_ = false;
  bool other_transfer_coding_ = false;
  bool content_coded_ = false;
  bool expects_continue_ = false;
  bool other_expectation_ = false;
};

/// The RequestHead of a request Beast parsed (a beast::http::request of any body and allocator),
/// from one pass over its fields.
template <class Request>
RequestHead head_of(const Request& req) {
  namespace http = boost::beast::http;
  RequestHead head(req.version(), req.method_string(), req.target());
  for (const auto& field : req) {
    switch (field.name()) {
      case http::field::host: head.host(field.value()); break;
      case http::field::transfer_encoding: head.transfer_encoding(field.value()); break;
      case http::field::content_encoding: head.content_encoding(field.value()); break;
      case http::field::expect: head.expect(field.value()); break;
      default: break;
    }
  }
  return head;
}

}  // namespace shardurl

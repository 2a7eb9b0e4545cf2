// The HTTP API, independent of sockets: a request in, a response out. Routes see the repository and
// the ring, never libpq or Beast's streams.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ring/ring.hpp"

namespace shardurl {

class LinkRepository;

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string_view target;
  std::string_view body;
};

struct Response {
  unsigned status = 200;
  std::string body;  // JSON unless a header says otherwise
  std::vector<std::pair<std::string, std::string>> headers;
};

/// {"detail": detail}, the shape of every error body.
Response error_response(unsigned status, std::string_view detail);

/// uhashring's node dict for `node`, as the tutorial's JSON shows it:
/// {"hostname":NAME,"instance":null,"nodename":NAME,"port":null,"vnodes":V,"weight":W}
std::string server_json(const ring::Node& node);

class Routes {
 public:
  explicit Routes(LinkRepository& links) : links_(links) {}

  /// Never throws for anything a client can send: every failure is a response.
  boost::asio::awaitable<Response> handle(const Request& request);

 private:
  boost::asio::awaitable<Response> create(const std::string* full_url);
  boost::asio::awaitable<Response> get(std::string id);

  LinkRepository& links_;
};

}  // namespace shardurl

// The HTTP API, independent of sockets: a request in, a response out. Routes see the repository and
// the ring, never libpq or Beast's streams.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api_keys.hpp"
#include "ring/ring.hpp"
#include "shards.hpp"

namespace shardurl {

class CacheGroup;
class Cluster;
class LinkCache;
class LinkRepository;
class RingFollower;
class Shards;
struct StoredLink;

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string_view target;
  std::string_view body;
  std::string_view content_type;
  std::optional<std::string_view> api_key;  // X-Api-Key
};

/// An answer. The few headers shardurl sends besides the ones every answer has are fields of
/// their own, so that building a response allocates for the body and Location only.
struct Response {
  unsigned status = 200;
  std::string body;
  std::string_view content_type = "application/json";  // empty: no Content-Type (empty body)
  std::string location;            // Location, when not empty (already percent-encoded)
  std::string_view cache_control;  // Cache-Control, when not empty
  std::string_view allow;          // Allow (405), when not empty
  std::string_view content_security_policy;  // Content-Security-Policy, when not empty
};

/// {"detail": detail}, the shape of every error body.
Response error_response(unsigned status, std::string_view detail);

/// uhashring's node dict for `node`, as the tutorial's JSON shows it:
/// {"hostname":NAME,"instance":null,"nodename":NAME,"port":null,"vnodes":V,"weight":W}
std::string server_json(const ring::Node& node);

struct RouteSettings {
  unsigned redirect_status = 302;
  std::size_t max_url_length = 2048;
  /// Each request's work on the shards ends by then (timeouts.request_ms); then 504.
  std::chrono::milliseconds request_timeout{2000};
};

/// One route the server answers, in OpenAPI's path syntax.
struct RouteInfo {
  std::string_view path;     // e.g. "/urls/{url_id}"
  std::string_view methods;  // e.g. "GET, HEAD, DELETE": also the 405's Allow header
};

class Routes {
 public:
  /// `links`, `cache` and `follower` are this worker's; `caches` holds every worker's, for
  /// deletes; `cluster` tells /readyz every shard's state.
  Routes(LinkRepository& links, LinkCache& cache, const CacheGroup& caches, const Cluster& cluster,
         const RingFollower& follower, RouteSettings settings, ApiKeys keys);

  /// Never throws for anything a client can send: every failure is a response. HEAD is answered
  /// as GET; the server drops the body.
  boost::asio::awaitable<Response> handle(const Request& request);

  /// New settings and keys (a reload), for requests from now on. On this worker's thread.
  void reconfigure(RouteSettings settings, ApiKeys keys) {
    settings_ = settings;
    keys_ = std::move(keys);
  }

  /// Every route handle() answers. test/unit checks it against openapi.json both ways.
  static std::span<const RouteInfo> table() noexcept;

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  [[nodiscard]] Deadline deadline() const;
  boost::asio::awaitable<Response> create_from_query(std::string url);
  boost::asio::awaitable<Response> create_from_json(std::string_view body,
                                                    std::optional<std::string_view> key);
  /// The row stored under `id`, from the shard (the cache missed); a live one is cached.
  boost::asio::awaitable<StoreResult<std::optional<StoredLink>>> lookup(const std::string& id);
  /// `status` with the tutorial's link JSON: url_id, url and the owning shard.
  Response link_answer(unsigned status, std::string_view id, std::string_view url) const;
  /// The redirect to an already encoded Location, or 409 when the link may not redirect.
  Response redirect_to(std::string_view id, std::string_view location) const;
  boost::asio::awaitable<Response> get(std::string id);
  boost::asio::awaitable<Response> redirect(std::string id);
  boost::asio::awaitable<Response> remove(std::string id, std::optional<std::string_view> key);
  Response ready() const;
  /// A 5xx for a failed store call, logged with its cause (throttled per shard and status).
  Response store_failure(const StoreError& e) const;

  LinkRepository& links_;
  LinkCache& cache_;
  const CacheGroup& caches_;
  const Cluster& cluster_;
  const RingFollower& follower_;
  RouteSettings settings_;
  ApiKeys keys_;
};

}  // namespace shardurl

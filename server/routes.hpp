// The HTTP API, independent of sockets: a request in, a response out. Routes see the repository and
// the ring, never libpq or Beast's streams.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
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
class Metrics;
class RingFollower;
class Shards;
struct StoredLink;

/// Which route answered a request: its index in Routes::table() (in this order), or one of the
/// last two. Metrics and the access log name a request by it (the route's template, never the raw
/// path), so their labels are bounded.
enum class RouteId : std::uint8_t {
  urls,       // /urls
  url,        // /urls/{url_id}
  healthz,    // /healthz
  readyz,     // /readyz
  openapi,    // /openapi.json
  docs,       // /docs
  metrics,    // /metrics
  redirect,   // /{url_id}
  unmatched,  // no route: 404, or a target that cannot be parsed (400)
  refused,    // refused by the HTTP layer before routing (malformed, too large, ...)
};
inline constexpr std::size_t route_ids = 10;

/// The route's template as Routes::table() names it, or "unmatched" or "refused".
std::string_view route_label(RouteId route) noexcept;

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  /// Written by Routes::handle before it returns (before anything is awaited): the route that
  /// took the request, for the HTTP layer's metrics and access log. (Next to `method`, in its
  /// padding.)
  mutable RouteId route = RouteId::unmatched;
  std::string_view target;
  std::string_view body;
  std::string_view content_type;
  std::optional<std::string_view> api_key;  // X-Api-Key
  /// When the HTTP layer had read the whole request: the cache's freshness checks and the
  /// request's latency count from here (one clock read serves both).
  std::chrono::steady_clock::time_point received{};
};

/// An answer. The few headers shardurl sends besides the ones every answer has are fields of
/// their own, so that building a response allocates for the body and Location only.
struct Response {
  static constexpr std::size_t no_shard = std::numeric_limits<std::size_t>::max();
  unsigned status = 200;
  std::string body;
  std::string_view content_type = "application/json";  // empty: no Content-Type (empty body)
  std::string location;            // Location, when not empty (already percent-encoded)
  std::string_view cache_control;  // Cache-Control, when not empty
  std::string_view allow;          // Allow (405), when not empty
  std::string_view content_security_policy;  // Content-Security-Policy, when not empty
  /// The shard (Shards' slot) that owns the link the answer is about, for the access log; no_shard
  /// when the answer involved none.
  std::size_t shard = no_shard;
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
  /// deletes; `cluster` tells /readyz every shard's state; `metrics` (every worker's) answers
  /// /metrics, which is 404 without it.
  Routes(LinkRepository& links, LinkCache& cache, const CacheGroup& caches, const Cluster& cluster,
         const RingFollower& follower, RouteSettings settings, ApiKeys keys,
         const Metrics* metrics = nullptr);

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
  /// The row stored under `id`, from the shard (the cache missed), which sets `shard` to the
  /// slot that owns it; a live one is cached.
  boost::asio::awaitable<StoreResult<std::optional<StoredLink>>> lookup(const std::string& id,
                                                                        std::size_t& shard);
  /// `status` with the tutorial's link JSON: url_id, url and the owning shard.
  Response link_answer(unsigned status, std::string_view id, std::string_view url) const;
  /// The redirect to an already encoded Location, or 409 when the link may not redirect; the
  /// link lives on `shard`.
  Response redirect_to(std::string_view id, std::string_view location, std::size_t shard) const;
  boost::asio::awaitable<Response> get(std::string id, std::chrono::steady_clock::time_point now);
  boost::asio::awaitable<Response> redirect(std::string id,
                                            std::chrono::steady_clock::time_point now);
  boost::asio::awaitable<Response> remove(std::string id, std::optional<std::string_view> key);
  Response ready() const;
  boost::asio::awaitable<Response> scrape() const;
  /// A 5xx for a failed store call, logged with its cause (throttled per shard and status).
  Response store_failure(const StoreError& e) const;

  LinkRepository& links_;
  LinkCache& cache_;
  const CacheGroup& caches_;
  const Cluster& cluster_;
  const RingFollower& follower_;
  RouteSettings settings_;
  ApiKeys keys_;
  const Metrics* metrics_;
};

}  // namespace shardurl

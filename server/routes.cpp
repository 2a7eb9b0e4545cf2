#include "routes.hpp"

#include <boost/json.hpp>

#include <array>

#include "docs_page.hpp"
#include "cluster.hpp"
#include "link_cache.hpp"
#include "link_repository.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "openapi.hpp"
#include "request_target.hpp"
#include "shards.hpp"
#include "validation.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace json = boost::json;
using boost::beast::http::verb;

namespace {

constexpr std::size_t max_id_length = 64;

// In RouteId's order.
constexpr std::array<RouteInfo, static_cast<std::size_t>(RouteId::unmatched)> routes = {{
    {"/urls", "POST"},
    {"/urls/{url_id}", "GET, HEAD, DELETE"},
    {"/healthz", "GET, HEAD"},
    {"/readyz", "GET, HEAD"},
    {"/openapi.json", "GET, HEAD"},
    {"/docs", "GET, HEAD"},
    {"/metrics", "GET, HEAD"},
    {"/{url_id}", "GET, HEAD"},
}};
static_assert(routes[static_cast<std::size_t>(RouteId::redirect)].path == "/{url_id}");
static_assert(routes[static_cast<std::size_t>(RouteId::metrics)].path == "/metrics");
static_assert(static_cast<std::size_t>(RouteId::refused) + 1 == route_ids);

// The Prometheus text exposition format, version 0.0.4.
constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

// FastAPI's answer to a missing required query parameter, byte for byte as FastAPI 0.119 with
// Pydantic v2 sends it (the tutorial's `uv add fastapi`, October 2025; docs/api.md says where).
constexpr std::string_view missing_full_url =
    R"({"detail":[{"type":"missing","loc":["query","full_url"],"msg":"Field required","input":null}]})";

// A JSON answer with no headers beyond the ones every answer has.
Response json_answer(unsigned status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// An answer that needs no waiting, as the awaitable handle() returns.
asio::awaitable<Response> answered(Response r) {
  co_return r;
}

bool is_read(verb method) {
  return method == verb::get || method == verb::head;
}

std::string link_json(std::string_view id, std::string_view url, const ring::Node& node) {
  std::string out = R"({"url_id":)";
  out += json::serialize(json::string_view(id));
  out += R"(,"url":)";
  out += json::serialize(json::string_view(url));
  out += R"(,"server":)";
  out += server_json(node);
  out += '}';
  return out;
}

Response method_not_allowed(std::string_view allow) {
  Response r = error_response(405, "Method Not Allowed");
  r.allow = allow;  // from the static route table
  return r;
}

std::string_view allow_for(std::string_view path) {
  for (const auto& route : routes) {
    if (route.path == path) return route.methods;
  }
  return "GET, HEAD";
}

// The API page. The policy lets it run only its own inline script and style and talk only to
// this server (no CDN, no other origin).
Response docs_page() {
  Response r;
  r.body = std::string(docs_page_html());
  r.content_type = "text/html; charset=utf-8";
  r.content_security_policy = docs_page_csp();
  return r;
}

// Ids longer than any stored id are refused before they reach a shard.
std::optional<Response> implausible_id(const std::string& id) {
  if (id.empty()) return error_response(404, "Not Found");
  if (id.size() > max_id_length) {
    return error_response(400, "ids are at most " + std::to_string(max_id_length) + " characters");
  }
  return std::nullopt;
}

bool is_json(std::string_view content_type) {
  constexpr std::string_view json_type = "application/json";
  if (content_type.size() < json_type.size()) return false;
  for (std::size_t i = 0; i < json_type.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(content_type[i])) != json_type[i]) return false;
  }
  return content_type.size() == json_type.size() || content_type[json_type.size()] == ';' ||
         content_type[json_type.size()] == ' ';
}

// The JSON body of POST /urls: {"url": "...", "alias": "..."}; the reason when it is not one.
struct CreateBody {
  std::string url;
  std::optional<std::string> alias;
};

std::variant<CreateBody, std::string> parse_create_body(std::string_view body) {
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec) return std::string("the body is not valid JSON");
  if (!doc.is_object()) return std::string("the body must be a JSON object");
  CreateBody out;
  for (const auto& [key, value] : doc.get_object()) {
    if (key == "url") {
      if (!value.is_string()) return std::string("url must be a string");
      out.url = value.get_string();
    } else if (key == "alias") {
      if (value.is_null()) continue;
      if (!value.is_string()) return std::string("alias must be a string");
      out.alias = std::string(value.get_string());
    } else {
      return "unknown field '" + std::string(key) + "': expected url and alias";
    }
  }
  if (!doc.get_object().contains("url")) return std::string("url is required");
  return out;
}

}  // namespace

std::string_view route_label(RouteId route) noexcept {
  const auto i = static_cast<std::size_t>(route);
  if (i < routes.size()) return routes[i].path;
  return route == RouteId::unmatched ? "unmatched" : "refused";
}

Response error_response(unsigned status, std::string_view detail) {
  return json_answer(status, R"({"detail":)" + json::serialize(json::string_view(detail)) + "}");
}

std::string server_json(const ring::Node& node) {
  const std::string name = json::serialize(json::string_view(node.name));
  return R"({"hostname":)" + name + R"(,"instance":null,"nodename":)" + name +
         R"(,"port":null,"vnodes":)" + std::to_string(node.vnodes) + R"(,"weight":)" +
         std::to_string(node.weight) + "}";
}

Routes::Routes(LinkRepository& links, LinkCache& cache, const CacheGroup& caches,
               const Cluster& cluster, const RingFollower& follower, RouteSettings settings,
               ApiKeys keys, const Metrics* metrics)
    : links_(links),
      cache_(cache),
      caches_(caches),
      cluster_(cluster),
      follower_(follower),
      settings_(settings),
      keys_(std::move(keys)),
      metrics_(metrics) {}

std::span<const RouteInfo> Routes::table() noexcept {
  return routes;
}

// Not a coroutine itself: it picks the route and returns that route's coroutine (or an answer
// that is ready), so a request costs one coroutine frame less. What a route's coroutine keeps
// must not point into `parsed`, which dies here: ids and URLs are passed by value.
asio::awaitable<Response> Routes::handle(const Request& request) {
  request.route = RouteId::unmatched;
  auto parsed = parse_target(request.target);
  if (auto* why = std::get_if<std::string>(&parsed)) return answered(error_response(400, *why));
  auto& target = std::get<RequestTarget>(parsed);
  auto& path = target.segments;
  const verb method = request.method;

  if (path.size() == 1 && !is_reserved(path[0])) {
    // The redirect first: the route nearly every request takes.
    request.route = RouteId::redirect;
    if (auto refused = implausible_id(path[0])) return answered(std::move(*refused));
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/{url_id}")));
    return redirect(std::move(path[0]), request.received);
  }
  if (path.size() == 1 && path[0] == "urls") {
    request.route = RouteId::urls;
    if (method != verb::post) return answered(method_not_allowed(allow_for("/urls")));
    if (const auto* full_url = target.param("full_url")) {
      return create_from_query(*full_url);
    }
    if (is_json(request.content_type)) return create_from_json(request.body, request.api_key);
    return answered(json_answer(422, std::string(missing_full_url)));
  }
  if (path.size() == 2 && path[0] == "urls") {
    request.route = RouteId::url;
    if (auto refused = implausible_id(path[1])) return answered(std::move(*refused));
    if (is_read(method)) return get(std::move(path[1]), request.received);
    if (method == verb::delete_) return remove(std::move(path[1]), request.api_key);
    return answered(method_not_allowed(allow_for("/urls/{url_id}")));
  }
  if (path.size() == 1 && path[0] == "healthz") {
    request.route = RouteId::healthz;
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/healthz")));
    return answered(json_answer(200, R"({"status":"ok"})"));
  }
  if (path.size() == 1 && path[0] == "readyz") {
    request.route = RouteId::readyz;
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/readyz")));
    return answered(ready());
  }
  if (path.size() == 1 && path[0] == "openapi.json") {
    request.route = RouteId::openapi;
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/openapi.json")));
    return answered(json_answer(200, std::string(openapi_json())));
  }
  if (path.size() == 1 && path[0] == "docs") {
    request.route = RouteId::docs;
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/docs")));
    return answered(docs_page());
  }
  if (path.size() == 1 && path[0] == "metrics" && metrics_ != nullptr) {
    request.route = RouteId::metrics;
    if (!is_read(method)) return answered(method_not_allowed(allow_for("/metrics")));
    return scrape();
  }
  return answered(error_response(404, "Not Found"));
}

// Every worker's counters and every shard's state, gathered on their own threads (Metrics::scrape).
asio::awaitable<Response> Routes::scrape() const {
  Response r;
  r.body = co_await metrics_->scrape();
  r.content_type = metrics_content_type;
  co_return r;
}

// Readiness: every shard of the ring this worker serves, its version, and a reshard in progress;
// 200 only when no shard is down.
Response Routes::ready() const {
  json::object states;
  std::string down;
  const auto now = std::chrono::steady_clock::now();
  const Shards& shards = cluster_.shards();
  const auto ring = follower_.current();
  for (const auto& shard : ring->shards()) {
    const auto slot = shards.slot_of(shard.name);
    if (!slot) continue;
    const ShardStatus status = shards.status(*slot);
    json::object entry{{"state", to_string(status.state)}};
    if (status.state == ShardState::down) {
      entry["error"] = status.error;
      entry["down_for_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - status.since).count();
      down += (down.empty() ? "" : ", ") + shard.name;
    }
    states[shard.name] = std::move(entry);
  }
  json::object body;
  if (down.empty()) {
    body["status"] = "ready";
  } else {
    body["detail"] = "shards not ready: " + down;
  }
  body["shards"] = std::move(states);
  body["ring"] = json::object{{"version", ring->version()}};
  const auto status = cluster_.status();
  if (!status.move.empty()) {
    boost::system::error_code ec;
    auto move = json::parse(status.move, ec);
    if (!ec) body["move"] = std::move(move);
  }
  return json_answer(down.empty() ? 200u : 503u, json::serialize(body));
}

Routes::Deadline Routes::deadline() const {
  return std::chrono::steady_clock::now() + settings_.request_timeout;
}

Response Routes::store_failure(const StoreError& e) const {
  unsigned status = 500;
  std::string detail = "internal error";
  switch (e.kind) {
    case StoreError::Kind::shard_timeout:
      status = 504;
      detail = "shard " + e.shard + " timed out";
      break;
    case StoreError::Kind::shard_unavailable:
      status = 503;
      detail = "shard " + e.shard + " unavailable";
      break;
    case StoreError::Kind::shard_overloaded:
      status = 503;
      detail = "shard " + e.shard + " overloaded";
      break;
    case StoreError::Kind::stale:
    case StoreError::Kind::moving:
      // The repository routes these again until the request's deadline; one that still gets
      // here is a shard the ring could not settle in time.
      status = 503;
      detail = "shard " + e.shard + " unavailable";
      break;
    case StoreError::Kind::internal: break;
  }
  // Every 5xx has its cause in the log: the shard, the SQLSTATE and the server's message are in
  // e.detail. At most one line a second per shard and status; the next line counts the rest.
  const std::string code = std::to_string(status);
  log::throttled(e.shard + "/" + code, status == 500 ? log::Level::error : log::Level::warning,
                 "answered " + code + " (" + detail + "): shard " + e.shard + ": " + e.detail,
                 {{"status", code}, {"shard", e.shard}, {"error", e.detail}});
  Response r = error_response(status, detail);
  r.shard = cluster_.shards().slot_of(e.shard).value_or(Response::no_shard);
  return r;
}

asio::awaitable<Response> Routes::create_from_query(std::string url) {
  if (auto problem = url_problem(url, settings_.max_url_length)) {
    co_return error_response(422, *problem);
  }
  auto created = co_await links_.create(url, deadline());
  if (!created) co_return store_failure(created.error());
  const auto& link = created->link;
  // The tutorial's form answers 200 whether or not the link is new.
  co_return link_answer(200, link.id, link.url);
}

asio::awaitable<Response> Routes::create_from_json(std::string_view body,
                                                   std::optional<std::string_view> key) {
  auto parsed = parse_create_body(body);
  if (auto* why = std::get_if<std::string>(&parsed)) co_return error_response(422, *why);
  auto& request = std::get<CreateBody>(parsed);
  if (auto problem = url_problem(request.url, settings_.max_url_length)) {
    co_return error_response(422, *problem);
  }
  const auto until = deadline();
  if (!request.alias) {
    auto created = co_await links_.create(std::move(request.url), until);
    if (!created) co_return store_failure(created.error());
    const auto& link = created->link;
    co_return link_answer(created->created ? 201u : 200u, link.id, link.url);
  }
  std::string& alias = *request.alias;
  if (auto problem = alias_problem(alias)) co_return error_response(422, *problem);
  // A key is checked only when one is given: anyone may create, only a key holder may restore.
  if (key && !keys_.accepts(*key)) co_return error_response(403, "the API key is not valid");
  auto claimed = co_await links_.claim(request.url, alias, until);
  if (claimed && *claimed == Claim::deleted && key) {
    claimed = co_await links_.restore(request.url, alias, until);
  }
  if (!claimed) co_return store_failure(claimed.error());
  Response refused;
  switch (*claimed) {
    case Claim::taken:
      refused = error_response(409, "alias " + alias + " is already used for a different URL");
      break;
    case Claim::deleted:
      refused = error_response(410, "alias " + alias +
                                        " belonged to a deleted link and is not reused; an API "
                                        "key holder may restore it (X-Api-Key)");
      break;
    case Claim::created:
    case Claim::existing:
      co_return link_answer(*claimed == Claim::created ? 201u : 200u, alias, request.url);
  }
  refused.shard = links_.owner_of(alias);
  co_return refused;
}

asio::awaitable<StoreResult<std::optional<StoredLink>>> Routes::lookup(const std::string& id,
                                                                       std::size_t& shard) {
  shard = links_.owner_of(id);
  const auto ticket = cache_.ticket(shard);
  auto found = co_await links_.find(id, deadline());
  if (!found) co_return found.error();
  // Read where the ticket's shard is (the ring did not change meanwhile), live: cached.
  if (*found && !(*found)->deleted && (*found)->shard == shard && cache_.enabled()) {
    // The Location a redirect sends is worked out once, when the link is cached.
    const std::string& url = (*found)->url;
    cache_.put(id, url, may_redirect_to(url) ? location_value(url) : std::string(), shard, ticket,
               LinkCache::Clock::now());
  }
  co_return found;
}

Response Routes::link_answer(unsigned status, std::string_view id, std::string_view url) const {
  const auto placement = links_.place(id);
  Response r = json_answer(status, link_json(id, url, placement.node));
  r.shard = placement.slot;
  return r;
}

Response Routes::redirect_to(std::string_view id, std::string_view location,
                             std::size_t shard) const {
  if (location.empty()) {
    // A row the tutorial stored without validation: an empty, relative, javascript:, data: ...
    // target is never sent to a browser. GET /urls/{id} still shows it.
    Response refused = error_response(409, "Url with id: " + std::string(id) +
                                               " is not redirected: its stored URL is not an "
                                               "absolute http or https URL (GET /urls/" +
                                               std::string(id) + " shows it)");
    refused.shard = shard;
    return refused;
  }
  Response r;
  r.shard = shard;
  r.status = settings_.redirect_status;
  r.content_type = {};
  r.location = location;
  // Permanent redirects are cached by browsers for ever unless told otherwise: keep that private
  // and short, so a deleted link stops redirecting soon. Temporary ones are not cached at all.
  if (r.status == 301 || r.status == 308) r.cache_control = "private, max-age=90";
  return r;
}

namespace {

Response not_found(std::string_view id, std::size_t shard) {
  Response r = error_response(404, "Url with id: " + std::string(id) + " was not found");
  r.shard = shard;
  return r;
}

Response gone(std::string_view id, std::size_t shard) {
  Response r = error_response(410, "Url with id: " + std::string(id) + " was deleted");
  r.shard = shard;
  return r;
}

}  // namespace

// A cache hit is answered from the cached strings themselves, before anything can suspend (and so
// before anything else on this thread can touch the cache).
asio::awaitable<Response> Routes::get(std::string id, LinkCache::Clock::time_point now) {
  if (auto hit = cache_.find(id, now)) co_return link_answer(200, id, hit->url);
  std::size_t shard = Response::no_shard;
  auto found = co_await lookup(id, shard);
  if (!found) co_return store_failure(found.error());
  if (!*found) co_return not_found(id, shard);
  if ((*found)->deleted) co_return gone(id, (*found)->shard);
  co_return link_answer(200, id, (*found)->url);
}

asio::awaitable<Response> Routes::redirect(std::string id, LinkCache::Clock::time_point now) {
  if (auto hit = cache_.find(id, now)) {
    co_return redirect_to(id, hit->location, hit->shard);
  }
  std::size_t shard = Response::no_shard;
  auto found = co_await lookup(id, shard);
  if (!found) co_return store_failure(found.error());
  if (!*found) co_return not_found(id, shard);
  if ((*found)->deleted) co_return gone(id, (*found)->shard);
  const std::string& url = (*found)->url;
  co_return redirect_to(id, may_redirect_to(url) ? location_value(url) : std::string(),
                        (*found)->shard);
}

asio::awaitable<Response> Routes::remove(std::string id, std::optional<std::string_view> key) {
  if (!key) co_return error_response(401, "an X-Api-Key header is required to delete links");
  if (!keys_.accepts(*key)) co_return error_response(403, "the API key is not valid");
  // Every worker's cache, before and after: a lookup racing the delete must not re-cache it.
  // Other instances hear of it from the shard (ChangeFeed).
  co_await caches_.evict(id);
  auto removed = co_await links_.remove(id, deadline());
  co_await caches_.evict(id);
  if (!removed) co_return store_failure(removed.error());
  const std::size_t shard = links_.owner_of(id);
  switch (*removed) {
    case Removal::not_found: co_return not_found(id, shard);
    case Removal::already_deleted: co_return gone(id, shard);
    case Removal::deleted: break;
  }
  Response done;
  done.status = 204;
  done.content_type = {};
  done.shard = shard;
  co_return done;
}

}  // namespace shardurl

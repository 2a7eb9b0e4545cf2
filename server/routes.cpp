#include "routes.hpp"

#include <boost/json.hpp>

#include "link_repository.hpp"
#include "request_target.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace json = boost::json;
using boost::beast::http::verb;

namespace {

// FastAPI's answer to a missing required query parameter, kept byte for byte for old clients.
constexpr std::string_view missing_full_url =
    R"({"detail":[{"loc":["query","full_url"],"msg":"field required","type":"value_error.missing"}]})";

std::string link_json(const Link& link, const ring::Node& node) {
  std::string out = R"({"url_id":)";
  out += json::serialize(json::string_view(link.id));
  out += R"(,"url":)";
  out += json::serialize(json::string_view(link.url));
  out += R"(,"server":)";
  out += server_json(node);
  out += '}';
  return out;
}

Response store_failure(const StoreError& e) {
  switch (e.kind) {
    case StoreError::Kind::shard_timeout:
      return error_response(504, "shard " + e.shard + " timed out");
    case StoreError::Kind::shard_unavailable:
      return error_response(503, "shard " + e.shard + " unavailable");
    case StoreError::Kind::internal: break;
  }
  return error_response(500, "internal error");
}

Response method_not_allowed(std::string_view allow) {
  Response r = error_response(405, "Method Not Allowed");
  r.headers.emplace_back("Allow", allow);
  return r;
}

}  // namespace

Response error_response(unsigned status, std::string_view detail) {
  return {status, R"({"detail":)" + json::serialize(json::string_view(detail)) + "}", {}};
}

std::string server_json(const ring::Node& node) {
  const std::string name = json::serialize(json::string_view(node.name));
  return R"({"hostname":)" + name + R"(,"instance":null,"nodename":)" + name +
         R"(,"port":null,"vnodes":)" + std::to_string(node.vnodes) + R"(,"weight":)" +
         std::to_string(node.weight) + "}";
}

asio::awaitable<Response> Routes::handle(const Request& request) {
  auto parsed = parse_target(request.target);
  if (auto* why = std::get_if<std::string>(&parsed)) co_return error_response(400, *why);
  const auto& target = std::get<RequestTarget>(parsed);
  const auto& path = target.segments;

  if (path.size() == 1 && path[0] == "urls") {
    if (request.method != verb::post) co_return method_not_allowed("POST");
    co_return co_await create(target.param("full_url"));
  }
  if (path.size() == 2 && path[0] == "urls") {
    if (request.method != verb::get) co_return method_not_allowed("GET");
    co_return co_await get(path[1]);
  }
  if (path.size() == 1 && path[0] == "healthz") {
    if (request.method != verb::get) co_return method_not_allowed("GET");
    co_return Response{200, R"({"status":"ok"})", {}};
  }
  co_return error_response(404, "Not Found");
}

asio::awaitable<Response> Routes::create(const std::string* full_url) {
  if (full_url == nullptr) co_return Response{422, std::string(missing_full_url), {}};
  auto created = co_await links_.create(*full_url);
  if (!created) co_return store_failure(created.error());
  const auto& link = created->link;
  co_return Response{200, link_json(link, links_.ring().node_of(link.id)), {}};
}

asio::awaitable<Response> Routes::get(std::string id) {
  auto found = co_await links_.find(id);
  if (!found) co_return store_failure(found.error());
  if (!*found) co_return error_response(404, "Url with id: " + id + " was not found");
  const Link& link = **found;
  co_return Response{200, link_json(link, links_.ring().node_of(link.id)), {}};
}

}  // namespace shardurl

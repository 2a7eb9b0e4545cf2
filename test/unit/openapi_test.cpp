// openapi.json and the router describe the same API: every route the server answers is in the
// document, with the same methods, and the document describes no route the server lacks.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>

#include "openapi.hpp"
#include "routes.hpp"
#include "validation.hpp"

namespace json = boost::json;

namespace {

std::set<std::string> methods_of(std::string_view allow) {
  std::set<std::string> out;
  while (!allow.empty()) {
    const auto comma = allow.find(',');
    std::string_view m = allow.substr(0, comma);
    while (!m.empty() && m.front() == ' ') m.remove_prefix(1);
    std::string lower(m);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    out.insert(lower);
    if (comma == std::string_view::npos) break;
    allow.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("openapi.json documents exactly the routes the server answers") {
  const json::value doc = json::parse(shardurl::openapi_json());
  CHECK(doc.at("openapi").as_string().starts_with("3."));
  const auto& paths = doc.at("paths").as_object();
  std::set<std::string> routed;
  for (const auto& route : shardurl::Routes::table()) {
    INFO("route " << route.path);
    routed.insert(std::string(route.path));
    REQUIRE(paths.contains(route.path));
    std::set<std::string> documented;
    for (const auto& [key, value] : paths.at(route.path).as_object()) {
      if (key != "parameters") documented.insert(std::string(key));
    }
    CHECK(documented == methods_of(route.methods));
  }
  for (const auto& [path, item] : paths) CHECK(routed.count(std::string(path)) == 1);
}

TEST_CASE("every error the document names has a JSON detail body or is a redirect") {
  const json::value doc = json::parse(shardurl::openapi_json());
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [method, op] : item.as_object()) {
      if (method == "parameters") continue;
      INFO(method << " " << path);
      CHECK(op.as_object().contains("responses"));
      CHECK(op.as_object().contains("summary"));
    }
  }
}

TEST_CASE("no alias can shadow a route: every fixed first path segment is reserved") {
  for (const auto& route : shardurl::Routes::table()) {
    std::string_view path = route.path.substr(1);
    const std::string_view first = path.substr(0, path.find('/'));
    if (first.starts_with("{")) continue;
    INFO(first);
    CHECK(shardurl::is_reserved(first));
  }
}

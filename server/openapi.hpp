// GET /openapi.json: the OpenAPI 3 description of every route, parameter, body and error.
#pragma once

#include <string_view>

namespace shardurl {

/// The document, as served. test/unit checks that its paths are exactly Routes::table().
std::string_view openapi_json() noexcept;

}  // namespace shardurl

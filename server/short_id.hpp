// Short ids are derived from the URL, as the tutorial's are: SHA-256 of the URL's bytes, base64.
// Unlike the tutorial's (standard base64, 5 characters), shardurl's are URL-safe (RFC 4648
// base64url: '-' and '_' instead of '+' and '/', no padding) and 7 characters by default. When a
// prefix already belongs to a different URL, the next longer prefix is tried; the full digest has
// 43 characters, so a URL always has somewhere to go.
#pragma once

#include <string>
#include <string_view>

namespace shardurl {

inline constexpr std::size_t default_id_length = 7;
inline constexpr std::size_t max_derived_id_length = 43;  // base64url of 32 bytes, unpadded

/// The 43-character base64url SHA-256 of `url`; its prefixes are the url's candidate ids.
std::string id_digest(std::string_view url);

/// The tutorial's id for `url`: the first 5 characters of the standard base64 SHA-256.
std::string tutorial_id(std::string_view url);

}  // namespace shardurl

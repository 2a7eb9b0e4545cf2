#include "docs_page.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <array>
#include <stdexcept>
#include <string>

namespace shardurl {
namespace {

constexpr std::string_view page =
#include "docs_page.html.inc"
    ;

// The text of the page's element that starts with `tag_open`, as the browser hashes it.
constexpr std::string_view inline_element(std::string_view tag_open, std::string_view tag_close) {
  const auto open = page.find(tag_open);
  const auto close = page.find(tag_close);
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    throw std::logic_error("docs_page.html lacks the element");  // in a constant: a build error
  }
  return page.substr(open + tag_open.size(), close - open - tag_open.size());
}

// A second inline script or style would be blocked by the policy: the build refuses it.
constexpr std::string_view script = inline_element("<script>", "</script>");
constexpr std::string_view style = inline_element("<style>", "</style>");
static_assert(page.find("<script") == page.rfind("<script"), "one <script> element, no attributes");
static_assert(page.find("<style") == page.rfind("<style"), "one <style> element, no attributes");

// CSP's hash-source: 'sha256-BASE64'.
std::string hash_source(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1> base64{};
  const int length = EVP_EncodeBlock(base64.data(), digest.data(), static_cast<int>(digest.size()));
  return "'sha256-" + std::string(reinterpret_cast<const char*>(base64.data()), length) + "'";
}

}  // namespace

std::string_view docs_page_html() noexcept {
  return page;
}

std::string_view docs_page_csp() {
  static const std::string policy = "default-src 'none'; script-src " + hash_source(script) +
                                    "; style-src " + hash_source(style) +
                                    "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                    "form-action 'none'; frame-ancestors 'none'";
  return policy;
}

}  // namespace shardurl

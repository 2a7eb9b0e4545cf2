// GET /docs: an interactive page over /openapi.json, shardurl's own (server/docs_page.html,
// embedded at build time): no CDN, nothing downloaded, works offline.
#pragma once

#include <string_view>

namespace shardurl {

/// The page, as served: HTML with one inline <style> and one inline <script>.
std::string_view docs_page_html() noexcept;

/// The page's Content-Security-Policy: its inline style and script by their SHA-256, fetches to
/// this origin only, nothing else loaded, no framing. Computed on first use, then kept.
std::string_view docs_page_csp();

}  // namespace shardurl

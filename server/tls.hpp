// The listener's TLS settings, as an OpenSSL context built from the configured files.
#pragma once
#include <memory>

#include "config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace shardurl {

/// A server context for `tls`: TLS 1.2 and up, ALPN "http/1.1" (a client that offers only other
/// protocols, such as h2 alone, is refused during the handshake), no renegotiation, buffers
/// released while a connection is idle. Reads the files now; throws ConfigError naming the file
/// and OpenSSL's reason when one cannot be used (missing, not PEM, key not matching).
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const TlsConfig& tls);

}  // namespace shardurl

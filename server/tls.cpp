#include "tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace shardurl {
namespace ssl = boost::asio::ssl;
namespace {

// Why a file could not be used: the system's reason when it cannot be read at all, else
// OpenSSL's reasons from its error queue (emptied), most specific first.
std::string reason_for(const std::string& path, std::string_view kind,
                       const boost::system::system_error& e) {
  std::vector<std::string> reasons;
  while (const unsigned long code = ERR_get_error()) {
    const char* text = ERR_reason_error_string(code);
    if (text != nullptr && std::find(reasons.begin(), reasons.end(), text) == reasons.end()) {
      reasons.emplace_back(text);
    }
  }
  if (FILE* file = std::fopen(path.c_str(), "rb")) {
    std::fclose(file);
  } else {
    return std::strerror(errno);
  }
  if (reasons.empty()) return e.code().message();
  std::string joined;
  for (auto it = reasons.rbegin(); it != reasons.rend(); ++it) {
    if (*it == "PEM lib" || *it == "system lib") continue;  // says which library, not why
    joined += joined.empty() ? *it : "; " + *it;
  }
  // OpenSSL names only its PEM reader when the file holds no PEM block of the kind asked for.
  return joined.empty() ? "no PEM " + std::string(kind) + " in it" : joined;
}

// ALPN (RFC 7301): the server picks http/1.1 when the client offers it. A client that offers
// protocols but not this one gets the no_application_protocol alert, as the RFC asks; one that
// offers none is served HTTP/1.1 as usual.
int select_http11(SSL*, const unsigned char** out, unsigned char* out_length,
                  const unsigned char* offered, unsigned int offered_length, void*) {
  static constexpr std::array<unsigned char, 9> http11 = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, http11.data(), http11.size(), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const TlsConfig& tls) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // An idle keep-alive connection holds no read or write buffer (some 34 KiB each otherwise).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  try {
    context->use_certificate_chain_file(tls.cert_file);
  } catch (const boost::system::system_error& e) {
    throw ConfigError("tls.cert_file", "cannot use " + tls.cert_file + ": " + reason_for(tls.cert_file, "certificate", e));
  }
  try {
    context->use_private_key_file(tls.key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    throw ConfigError("tls.key_file", "cannot use " + tls.key_file + ": " + reason_for(tls.key_file, "private key", e));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw ConfigError("tls.key_file",
                      tls.key_file + " is not the private key of the certificate in " +
                          tls.cert_file);
  }
  return context;
}

}  // namespace shardurl

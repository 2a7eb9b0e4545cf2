// Turning a conninfo string into libpq connect parameters whose hosts are already resolved, so
// PQconnectStartParams never does a DNS lookup on an I/O thread. Pure: no I/O, no Asio.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pgasync/error.hpp"

namespace shardurl::pgasync::detail {

struct HostEntry {
  std::string host;                // as written; kept for TLS verification and messages
  std::string port;                // "" means libpq's default
  bool needs_resolving = false;    // a DNS name (not numeric, not a Unix socket)
  std::vector<std::string> addrs;  // numeric addresses, filled by the caller for DNS names
};

struct ConnectPlan {
  // Every explicit option except host, hostaddr and port (those come from `hosts`), unless
  // `hosts` is empty, in which case they are passed through untouched.
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<HostEntry> hosts;
};

/// Parses `conninfo` (key=value or URI). PGHOST/PGHOSTADDR/PGPORT stand in for missing keys, as
/// libpq would use them. `extra_options` is appended to libpq's `options` (command-line style
/// server settings). Fails with connection_failed and libpq's parse message.
Result<ConnectPlan> plan_connect(const std::string& conninfo,
                                 const std::string& extra_options = {});

/// The keyword/value lists for PQconnectStartParams: one libpq host entry per address, in order.
/// Hosts left with no address (failed resolution) are skipped. Fails with connection_failed when
/// no host is left.
Result<std::vector<std::pair<std::string, std::string>>> connect_params(const ConnectPlan& plan);

}  // namespace shardurl::pgasync::detail

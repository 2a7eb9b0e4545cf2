// `shardurl serve`: runs the HTTP service until SIGINT or SIGTERM.
#pragma once

#include "config.hpp"

namespace shardurl {

/// Serves `config` until a stop signal (SIGINT, SIGTERM); SIGHUP re-reads `config_path` (empty:
/// none, the built-in default). Returns the process exit status. Throws ConfigError when the
/// configuration lacks what serving needs (a shard's conninfo, usable TLS files).
int serve(const Config& config, const std::string& config_path = {});

}  // namespace shardurl

// `shardurl serve`: runs the HTTP service until SIGINT or SIGTERM.
#pragma once

#include "config.hpp"

namespace shardurl {

/// Serves `config` on one thread until a stop signal. Returns the process exit status.
/// Throws ConfigError when the configuration lacks what serving needs (a shard's conninfo).
int serve(const Config& config);

}  // namespace shardurl

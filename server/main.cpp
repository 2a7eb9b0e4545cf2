// shardurl: a sharded URL shortener. One executable, one subcommand per job.
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include <unistd.h>

#include <optional>
#include <vector>

#include "config.hpp"
#include "placement_sql.hpp"
#include "reshard.hpp"
#include "ring_command.hpp"
#include "serve.hpp"

namespace {

constexpr int exit_usage = 2;
constexpr int exit_config = 2;

constexpr std::string_view usage =
    "usage: shardurl serve [--config FILE]  serve the HTTP API until SIGINT or SIGTERM\n"
    "       shardurl ring [--config FILE]   print key<TAB>shard for each key read on stdin\n"
    "       shardurl ring [--config FILE] --sql SHARD\n"
    "                                       print the SQL condition that selects the rows of\n"
    "                                       url_table the ring places on SHARD\n"
    "       shardurl reshard --config OLD.json --to NEW.json [--dry-run]\n"
    "                                       move the links whose shard differs between the two\n"
    "                                       rings while the cluster serves (docs/resharding.md)\n"
    "       shardurl config                 print the embedded default config\n"
    "Without --config, both use the embedded default: shards 5432, 5433, 5434 on 127.0.0.1.\n"
    "       shardurl --help\n";

int fail_usage(const std::string& why) {
  std::cerr << "shardurl: " << why << "\n" << usage;
  return exit_usage;
}

// Parses `--config FILE` (or `--config=FILE`), the only option the subcommands share; `path` stays
// empty without it.
bool config_path(int argc, char** argv, std::string& path, std::string& error) {
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      path = std::string(arg.substr(9));
    } else {
      error = "unexpected argument '" + std::string(arg) + "'";
      return false;
    }
  }
  return true;
}

// Loads the config named by --config; on failure prints one line and returns false.
bool load(int argc, char** argv, shardurl::Config& config, std::string& path, int& status) {
  std::string error;
  if (!config_path(argc, argv, path, error)) {
    status = fail_usage(error);
    return false;
  }
  try {
    config = path.empty() ? shardurl::parse_config(shardurl::default_config_json)
                          : shardurl::load_config(path);
  } catch (const shardurl::ConfigError& e) {
    std::cerr << "shardurl: config " << path << ": " << e.what() << "\n";
    status = exit_config;
    return false;
  }
  return true;
}

int run_ring(int argc, char** argv) {
  // --sql SHARD: the placement as SQL (server/placement_sql.hpp), for operators and bench/reshard.
  std::vector<char*> rest{argv[0], argv[1]};
  std::optional<std::string> sql_for;
  for (int i = 2; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--sql" && i + 1 < argc) {
      sql_for = argv[++i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  shardurl::Config config;
  std::string path;
  int status = 0;
  if (!load(static_cast<int>(rest.size()), rest.data(), config, path, status)) return status;
  if (sql_for) {
    const auto ring = shardurl::make_ring(config);
    for (std::size_t i = 0; i < ring.nodes().size(); ++i) {
      if (ring.nodes()[i].name == *sql_for) {
        std::cout << shardurl::owned_by_sql(ring, i) << "\n";
        return 0;
      }
    }
    std::cerr << "shardurl: the ring has no shard named '" << *sql_for << "'\n";
    return exit_usage;
  }
  std::ios::sync_with_stdio(false);
  shardurl::print_owners(shardurl::make_ring(config), std::cin, std::cout);
  return std::cout ? 0 : 1;
}

int run_reshard(int argc, char** argv) {
  std::string from_path;
  std::string to_path;
  shardurl::ReshardOptions options;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      from_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      from_path = std::string(arg.substr(9));
    } else if (arg == "--to" && i + 1 < argc) {
      to_path = argv[++i];
    } else if (arg.starts_with("--to=")) {
      to_path = std::string(arg.substr(5));
    } else if (arg == "--dry-run") {
      options.dry_run = true;
    } else {
      return fail_usage("unexpected argument '" + std::string(arg) + "'");
    }
  }
  if (from_path.empty() || to_path.empty()) {
    return fail_usage("reshard needs --config OLD.json and --to NEW.json");
  }
  shardurl::Config from;
  shardurl::Config to;
  for (auto [path, config] : {std::pair{&from_path, &from}, std::pair{&to_path, &to}}) {
    try {
      *config = shardurl::load_config(*path);
    } catch (const shardurl::ConfigError& e) {
      std::cerr << "shardurl: config " << *path << ": " << e.what() << "\n";
      return exit_config;
    }
  }
  options.terminal = isatty(STDOUT_FILENO) != 0;
  return shardurl::reshard(from, to, options, std::cout, std::cerr);
}

int run_serve(int argc, char** argv) {
  shardurl::Config config;
  std::string path;
  int status = 0;
  if (!load(argc, argv, config, path, status)) return status;
  try {
    return shardurl::serve(config, path);
  } catch (const shardurl::ConfigError& e) {
    std::cerr << "shardurl: config " << path << ": " << e.what() << "\n";
    return exit_config;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string_view command = argc > 1 ? argv[1] : "";
    if (command == "ring") return run_ring(argc, argv);
    if (command == "serve") return run_serve(argc, argv);
    if (command == "reshard") return run_reshard(argc, argv);
    if (command == "config") {
      std::cout << shardurl::default_config_json << "\n";
      return 0;
    }
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << usage;
      return 0;
    }
    return fail_usage(command.empty() ? "a subcommand is required"
                                      : "unknown subcommand '" + std::string(command) + "'");
  } catch (const std::exception& e) {
    std::cerr << "shardurl: " << e.what() << "\n";
    return 1;
  }
}

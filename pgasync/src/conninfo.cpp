#include "conninfo.hpp"

#include <algorithm>

#include <libpq-fe.h>

#include <arpa/inet.h>

#include <cstdlib>
#include <memory>
#include <string_view>

namespace shardurl::pgasync::detail {
namespace {

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  while (true) {
    const auto comma = text.find(',');
    parts.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) return parts;
    text.remove_prefix(comma + 1);
  }
}

bool is_numeric_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Error failed(std::string message) {
  Error err{Errc::connection_failed, {}};
  err.diag.client_message = std::move(message);
  return err;
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only at startup
  return value != nullptr ? value : "";
}

}  // namespace

Result<ConnectPlan> plan_connect(const std::string& conninfo, const std::string& extra_options) {
  char* errmsg = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> parsed(
      PQconninfoParse(conninfo.c_str(), &errmsg), &PQconninfoFree);
  if (!parsed) {
    std::string message = errmsg != nullptr ? errmsg : "out of memory parsing conninfo";
    PQfreemem(errmsg);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return failed(std::move(message));
  }

  ConnectPlan plan;
  std::string host = env_or_empty("PGHOST");
  std::string hostaddr = env_or_empty("PGHOSTADDR");
  std::string port = env_or_empty("PGPORT");
  for (const PQconninfoOption* opt = parsed.get(); opt->keyword != nullptr; ++opt) {
    if (opt->val == nullptr) continue;
    const std::string_view key = opt->keyword;
    if (key == "host") {
      host = opt->val;
    } else if (key == "hostaddr") {
      hostaddr = opt->val;
    } else if (key == "port") {
      port = opt->val;
    } else {
      plan.options.emplace_back(opt->keyword, opt->val);
    }
  }

  if (!extra_options.empty()) {
    auto it = std::find_if(plan.options.begin(), plan.options.end(),
                           [](const auto& kv) { return kv.first == "options"; });
    if (it == plan.options.end()) {
      plan.options.emplace_back("options", extra_options);
    } else {
      it->second += ' ';
      it->second += extra_options;
    }
  }

  if (!hostaddr.empty() || host.empty()) {
    // libpq will not resolve anything: an explicit address, or the default Unix socket.
    if (!host.empty()) plan.options.emplace_back("host", host);
    if (!hostaddr.empty()) plan.options.emplace_back("hostaddr", hostaddr);
    if (!port.empty()) plan.options.emplace_back("port", port);
    return plan;
  }

  const auto hosts = split_commas(host);
  const auto ports = split_commas(port);
  if (ports.size() != 1 && ports.size() != hosts.size()) {
    return failed("could not match " + std::to_string(ports.size()) + " port numbers to " +
                  std::to_string(hosts.size()) + " hosts");
  }
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    HostEntry entry;
    entry.host = hosts[i];
    entry.port = ports.size() == 1 ? ports[0] : ports[i];
    if (entry.host.empty() || entry.host.front() == '/' || entry.host.front() == '@') {
      // A Unix-socket directory (or abstract socket): nothing to resolve.
    } else if (is_numeric_address(entry.host)) {
      entry.addrs.push_back(entry.host);
    } else {
      entry.needs_resolving = true;
    }
    plan.hosts.push_back(std::move(entry));
  }
  return plan;
}

Result<std::vector<std::pair<std::string, std::string>>> connect_params(const ConnectPlan& plan) {
  auto params = plan.options;
  if (plan.hosts.empty()) return params;

  std::string hosts;
  std::string addrs;
  std::string ports;
  bool first = true;
  auto add = [&](const HostEntry& entry, const std::string& addr) {
    if (!first) {
      hosts += ',';
      addrs += ',';
      ports += ',';
    }
    first = false;
    hosts += entry.host;
    addrs += addr;  // an empty entry lets libpq use the host (a Unix socket) for this one
    ports += entry.port;
  };
  for (const auto& entry : plan.hosts) {
    const bool is_socket = !entry.needs_resolving && entry.addrs.empty();
    if (is_socket) {
      add(entry, "");
    } else {
      for (const auto& addr : entry.addrs) add(entry, addr);
    }
  }
  if (first) return failed("could not resolve any host name in the connection string");
  params.emplace_back("host", std::move(hosts));
  params.emplace_back("hostaddr", std::move(addrs));
  params.emplace_back("port", std::move(ports));
  return params;
}

}  // namespace shardurl::pgasync::detail

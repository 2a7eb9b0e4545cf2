#include "reshard.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "pgasync/connection.hpp"
#include "placement_sql.hpp"
#include "topology.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace json = boost::json;
using pgasync::Connection;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// pg_try_advisory_lock's key: one reshard at a time per cluster ("shrdurl" in ASCII).
constexpr std::int64_t lock_key = 0x73687264'75726c;
constexpr int required_schema_version = 3;
// When a fence lets writes through again if the cutover does not finish (the command died): well
// after fence_wait, so a live command always makes it permanent first.
constexpr seconds fence_lapse{2};
// How long the cutover may wait for the targets to reach the fence before lifting it and trying
// again: writes to the moving links are held meanwhile, and must never be held a second.
constexpr milliseconds fence_wait{600};
// How long a step retries a shard that went away (restarting) before the command gives up.
constexpr seconds reconnect_for{120};
// Caught up: the newest marker reached the target within this.
constexpr milliseconds small_lag{300};
// How long to wait for every running instance to serve the new ring.
constexpr seconds ack_wait{15};
// Rows read per page at plan, verify and cleanup. After each page the command pauses twice as long
// as the page took, so its passes over the shards take a third of their time at most and leave
// the rest to the requests they serve meanwhile.
constexpr int batch_rows = 5000;
constexpr int pause_factor = 2;

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The parameters of one statement. (A braced list inside a co_await expression does not compile
// with GCC 12: "array used as initializer".)
template <class... Texts>
std::vector<std::string> args(const Texts&... texts) {
  return {std::string(texts)...};
}

using MetaValues = std::vector<std::pair<std::string, std::string>>;

std::string literal(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::int64_t to_int(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() ? value : -1;
}

// Two configs describe the same ring: same hash, and the same nodes with the same weights and
// vnodes in the same order (connection strings do not matter).
bool same_ring(const Config& a, const Config& b) {
  const ring::Ring ra = make_ring(a);
  const ring::Ring rb = make_ring(b);
  if (ra.hash() != rb.hash() || ra.nodes().size() != rb.nodes().size()) return false;
  for (std::size_t i = 0; i < ra.nodes().size(); ++i) {
    const auto& x = ra.nodes()[i];
    const auto& y = rb.nodes()[i];
    if (x.name != y.name || x.weight != y.weight || x.vnodes != y.vnodes) return false;
  }
  return true;
}

// 16 hex digits of FNV-1a 64 over a shard's name: part of a replication object's identifier,
// whatever characters the name holds.
std::string name_hash(std::string_view name) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

std::string now_text() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string duration_text(double s) {
  std::ostringstream out;
  if (s < 60) {
    out << std::fixed << std::setprecision(1) << s << " s";
  } else {
    out << static_cast<long long>(s) / 60 << " min " << static_cast<long long>(s) % 60 << " s";
  }
  return out.str();
}

// One shard as the command sees it: its config (from NEW.json when it is there, else OLD.json),
// its node in each ring, and a session that holds the reshard lock.
struct Peer {
  std::string name;
  ShardConfig config;
  std::optional<std::size_t> old_node;
  std::optional<std::size_t> new_node;
  std::optional<Connection> conn;
  std::map<std::string, std::string> meta;
};

// Links moving from one shard to another.
struct Pair {
  std::size_t source = 0;  // index into peers
  std::size_t target = 0;
  std::string name;        // of its publication, subscription, slot and marker
  double share = 0;        // of all keys, as the rings predict
  std::int64_t planned = 0;
  std::string moving;      // on the source: the rows that move (their new owner is the target)
  std::string leftovers;   // on the target: rows of the source that an earlier attempt copied
  // Progress.
  std::string state;       // pg_subscription_rel.srsubstate on the target
  std::int64_t copied = 0;
  double lag_ms = -1;
  std::int64_t verified = 0;
};

class Reshard {
 public:
  Reshard(const Config& from, const Config& to, const ReshardOptions& options, std::ostream& out)
      : from_(from), to_(to), options_(options), out_(out), old_ring_(make_ring(from)),
        new_ring_(make_ring(to)) {}

  asio::awaitable<int> run();

 private:
  /// Adds a peer for every shard of `config` not known yet, and sets every peer's nodes.
  void add_peers(const Config& config);
  asio::awaitable<void> connect(Peer& peer);
  asio::awaitable<pgasync::QueryResult> sql(Peer& peer, std::string text,
                                             std::vector<std::string> args = {});
  asio::awaitable<void> script(Peer& peer, std::string text);
  asio::awaitable<void> sleep(milliseconds how_long);
  /// After a page of a pass over a shard begun at `started`: sleeps pause_factor times its length.
  asio::awaitable<void> pause(Clock::time_point started);
  asio::awaitable<void> read_meta(Peer& peer);
  asio::awaitable<void> write_meta_everywhere(const std::vector<std::pair<std::string, std::string>>& values,
                                              bool notify_ring);
  asio::awaitable<void> check_preconditions();
  asio::awaitable<void> plan();
  asio::awaitable<void> copy();
  asio::awaitable<bool> catch_up();
  asio::awaitable<bool> cutover();
  asio::awaitable<void> lift_fences();
  asio::awaitable<void> wait_for_instances();
  asio::awaitable<void> verify();
  asio::awaitable<void> count_tutorial_ids();
  asio::awaitable<void> drop_replication();
  asio::awaitable<void> cleanup();
  asio::awaitable<void> progress();
  asio::awaitable<std::string> mark(Pair& pair);
  void print_plan();
  void print_progress(bool final);
  [[nodiscard]] std::string move_json(std::string_view phase) const;

  Config from_;  // the ring the move leaves: --config's, or the one a move in progress recorded
  Config to_;
  ReshardOptions options_;
  std::ostream& out_;
  ring::Ring old_ring_;
  ring::Ring new_ring_;
  std::vector<Peer> peers_;
  std::vector<Pair> pairs_;
  std::map<std::string, std::int64_t> rows_;  // links on each shard of the old ring
  // Links on each shard of the old ring that its ring places elsewhere: how many, and one.
  std::map<std::string, std::pair<std::int64_t, std::string>> misplaced_;
  std::uint64_t version_ = 0;  // the ring version the cluster serves (OLD's)
  std::uint64_t next_ = 0;     // the version NEW becomes
  std::string started_;
  Clock::time_point copy_started_{};
  std::mt19937_64 random_{std::random_device{}()};
  bool drawn_ = false;  // progress bars on the terminal, to be redrawn
};

asio::awaitable<void> Reshard::sleep(milliseconds how_long) {
  asio::steady_timer timer(co_await asio::this_coro::executor, how_long);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> Reshard::pause(Clock::time_point started) {
  co_await sleep(std::chrono::duration_cast<milliseconds>(pause_factor * (Clock::now() - started)) +
                 milliseconds(1));
}

// Opens the peer's session, takes the reshard lock on it, and keeps retrying a shard that is
// restarting (a reshard must survive a target's restart mid-copy) for up to reconnect_for.
asio::awaitable<void> Reshard::connect(Peer& peer) {
  const auto give_up = Clock::now() + reconnect_for;
  std::string last;
  const auto executor = co_await asio::this_coro::executor;
  while (Clock::now() < give_up) {
    auto conn = co_await Connection::connect(executor, peer.config.conninfo, Clock::now() + seconds(5));
    if (conn) {
      auto setup = co_await conn->execute_script(
          "SET application_name = 'shardurl reshard'; SET standard_conforming_strings = on; "
          "SET client_min_messages = warning; SET synchronous_commit = on; "
          "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'",
          Clock::now() + seconds(10));
      const std::string key = std::to_string(lock_key);
      auto locked = co_await conn->query("SELECT pg_try_advisory_lock($1::bigint)",
                                         pgasync::params(key), Clock::now() + seconds(10));
      if (setup && locked) {
        if (locked->get(0, 0) != "t") {
          throw Failure("another shardurl reshard is running against shard " + peer.name +
                        " (it holds the reshard lock; see pg_stat_activity's 'shardurl reshard' "
                        "session there): wait for it to finish, or stop it and run this again");
        }
        peer.conn.emplace(std::move(*conn));
        co_return;
      }
      last = !setup ? setup.error().describe() : locked.error().describe();
    } else {
      last = conn.error().describe();
      // A restarting shard is worth waiting for; a wrong password or database is not.
      const std::string state = conn.error().diag.sqlstate;  // error() returns a copy
      if (!pgasync::is_server_unavailable(conn.error()) || state.starts_with("28") ||
          state == "3D000") {
        break;
      }
    }
    co_await sleep(milliseconds(500));
  }
  throw Failure("cannot reach shard " + peer.name + " (" + without_password(peer.config.conninfo) +
                "): " + last);
}

asio::awaitable<pgasync::QueryResult> Reshard::sql(Peer& peer, std::string text,
                                                    std::vector<std::string> args) {
  std::vector<pgasync::Param> params(args.begin(), args.end());
  for (int attempt = 0;; ++attempt) {
    if (!peer.conn || peer.conn->is_broken()) co_await connect(peer);
    auto result = co_await peer.conn->query(text, params, Clock::now() + seconds(60));
    if (result) co_return std::move(*result);
    if (!peer.conn->is_broken() || attempt > 100) {
      throw Failure("shard " + peer.name + ": " + result.error().describe());
    }
    // The session broke (the shard restarted): open another, and run the statement again. Every
    // statement the command sends is safe to repeat.
  }
}

asio::awaitable<void> Reshard::script(Peer& peer, std::string text) {
  for (int attempt = 0;; ++attempt) {
    if (!peer.conn || peer.conn->is_broken()) co_await connect(peer);
    auto result = co_await peer.conn->execute_script(text, Clock::now() + seconds(120));
    if (result) co_return;
    if (!peer.conn->is_broken() || attempt > 100) {
      throw Failure("shard " + peer.name + ": " + result.error().describe());
    }
  }
}

asio::awaitable<void> Reshard::read_meta(Peer& peer) {
  auto rows = co_await sql(peer, "SELECT key, value FROM shardurl_meta");
  peer.meta.clear();
  for (int r = 0; r < rows.rows(); ++r) {
    peer.meta[std::string(rows.get(r, 0))] = std::string(rows.get(r, 1));
  }
}

// Writes `values` into every shard's shardurl_meta (each shard in one transaction), announcing a
// new ring on each with NOTIFY when `notify_ring`. An empty value deletes the key.
asio::awaitable<void> Reshard::write_meta_everywhere(
    const std::vector<std::pair<std::string, std::string>>& values, bool notify_ring) {
  std::string text = "BEGIN;";
  for (const auto& [key, value] : values) {
    if (value.empty()) {
      text += "DELETE FROM shardurl_meta WHERE key = " + literal(key) + ";";
    } else {
      text += "INSERT INTO shardurl_meta (key, value) VALUES (" + literal(key) + ", " +
              literal(value) + ") ON CONFLICT (key) DO UPDATE SET value = excluded.value;";
    }
  }
  if (notify_ring) text += "NOTIFY shardurl_topology, " + literal(std::to_string(next_)) + ";";
  text += "COMMIT";
  for (auto& peer : peers_) co_await script(peer, text);
}

std::string Reshard::move_json(std::string_view phase) const {
  json::object move{{"to", next_},
                    {"from", version_},
                    {"phase", phase},
                    {"started", started_},
                    {"old", json::parse(Topology(version_, from_).to_json())},
                    {"new", json::parse(Topology(next_, to_).to_json())}};
  json::array pairs;
  for (const auto& pair : pairs_) {
    pairs.push_back(json::object{{"from", peers_[pair.source].name},
                                 {"to", peers_[pair.target].name},
                                 {"links", pair.planned}});
  }
  move["pairs"] = std::move(pairs);
  return json::serialize(move);
}

asio::awaitable<void> Reshard::check_preconditions() {
  std::vector<std::string> problems;
  std::map<std::size_t, int> out_pairs;
  std::map<std::size_t, int> in_pairs;
  for (const auto& pair : pairs_) {
    ++out_pairs[pair.source];
    ++in_pairs[pair.target];
  }
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    Peer& peer = peers_[i];
    if (to_int(peer.meta["schema_version"]) < required_schema_version) {
      problems.push_back("shard " + peer.name + " has schema version " +
                         (peer.meta["schema_version"].empty() ? "(none)" : peer.meta["schema_version"]) +
                         ", resharding needs " + std::to_string(required_schema_version) +
                         ": apply initdb/*.sql to it");
      continue;
    }
    auto settings = co_await sql(
        peer,
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int - "
        "(SELECT count(*) FROM pg_replication_slots WHERE slot_name NOT LIKE 'shardurl_v%'), "
        "current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication), "
        "current_setting('max_logical_replication_workers')::int, "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)");
    const int sources = out_pairs.count(i) ? out_pairs[i] : 0;
    const int targets = in_pairs.count(i) ? in_pairs[i] : 0;
    if (sources > 0) {
      if (settings.get(0, 0) != "logical") {
        problems.push_back("shard " + peer.name + " has wal_level = " +
                           std::string(settings.get(0, 0)) +
                           ": set wal_level = logical in its postgresql.conf and restart it");
      }
      // A slot per pair, and one more while its initial copy runs.
      if (to_int(settings.get(0, 1)) < 2 * sources) {
        problems.push_back("shard " + peer.name + " has " + std::string(settings.get(0, 1)) +
                           " free replication slots, moving its links needs " +
                           std::to_string(2 * sources) + ": raise max_replication_slots");
      }
      if (to_int(settings.get(0, 2)) < 2 * sources) {
        problems.push_back("shard " + peer.name + " has " + std::string(settings.get(0, 2)) +
                           " free WAL senders, moving its links needs " +
                           std::to_string(2 * sources) + ": raise max_wal_senders");
      }
    }
    if (targets > 0 && to_int(settings.get(0, 3)) < targets + 1) {
      problems.push_back("shard " + peer.name + " allows " + std::string(settings.get(0, 3)) +
                         " logical replication workers, receiving links from " +
                         std::to_string(targets) + " shards needs " + std::to_string(targets + 1) +
                         ": raise max_logical_replication_workers");
    }
    if ((sources > 0 || targets > 0) && settings.get(0, 4) != "t") {
      problems.push_back("shard " + peer.name +
                         ": its user must be a superuser to create publications and "
                         "subscriptions: connect as one");
    }
  }
  // --config must be the ring the cluster serves: every link on a shard of it belongs there.
  for (const auto& [name, count] : misplaced_) {
    if (count.first == 0) continue;
    problems.push_back("shard " + name + " holds " + std::to_string(count.first) +
                       " links (e.g. '" + count.second +
                       "') that the ring of --config places on other shards: give --config the "
                       "ring the cluster serves now");
  }
  // Every target must reach its sources the way the subscription will (and only a new pair is
  // checked: one that exists already reached it).
  for (auto& pair : pairs_) {
    Peer& source = peers_[pair.source];
    Peer& target = peers_[pair.target];
    auto exists = co_await sql(target, "SELECT count(*) FROM pg_subscription WHERE subname = $1", args(pair.name));
    if (exists.get(0, 0) != "0" || !problems.empty()) continue;
    const std::string probe = pair.name + "_check";
    const std::string conninfo = source.config.replication_conninfo.empty()
                                     ? source.config.conninfo
                                     : source.config.replication_conninfo;
    // One an interrupted run may have left.
    co_await script(target, "DROP SUBSCRIPTION IF EXISTS " + probe);
    auto created = co_await target.conn->execute_script(
        "CREATE SUBSCRIPTION " + probe + " CONNECTION " + literal(conninfo) + " PUBLICATION " +
            probe + " WITH (connect = true, enabled = false, create_slot = false, "
                    "copy_data = false, slot_name = NONE)",
        Clock::now() + seconds(30));
    if (!created) {
      problems.push_back("shard " + target.name + " cannot reach shard " + source.name + " at '" +
                         without_password(conninfo) + "' (" + created.error().describe() +
                         "): give " + source.name +
                         " a replication_conninfo that its peers can use");
    } else {
      co_await script(target, "DROP SUBSCRIPTION " + probe);
    }
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "\n") + p;
    throw Failure(all);
  }
}

asio::awaitable<void> Reshard::plan() {
  const auto moves = ring::moves(old_ring_, new_ring_);
  const auto index_of = [this](const std::string& name) {
    for (std::size_t i = 0; i < peers_.size(); ++i) {
      if (peers_[i].name == name) return i;
    }
    throw std::logic_error("no peer " + name);
  };
  for (const auto& move : moves) {
    Pair pair;
    pair.source = index_of(move.from);
    pair.target = index_of(move.to);
    pair.share = move.share;
    // Named after the shards, not their order in the files: a resumed run finds the same names.
    pair.name = "shardurl_v" + std::to_string(next_) + "_" + name_hash(peers_[pair.source].name) +
                "_" + name_hash(peers_[pair.target].name);
    pair.moving = owned_by_sql(new_ring_, *peers_[pair.target].new_node);
    pair.leftovers = "(" + owned_by_sql(old_ring_, *peers_[pair.source].old_node) + ") AND (" +
                     pair.moving + ")";
    pairs_.push_back(std::move(pair));
  }
  // One pass over each shard of the old ring in url_id order (its index): the rings decide, here,
  // where each link is and where it goes, so the shards only read their index and rows.
  for (auto& peer : peers_) {
    if (!peer.old_node) continue;
    std::int64_t rows_here = 0;
    auto& misplaced = misplaced_[peer.name];
    std::map<std::string, std::int64_t> leaving;  // by new owner
    std::string after;
    for (bool first = true;; first = false) {
      const auto page_started = Clock::now();
      // Named first: a conditional inside a co_await expression is what GCC 12 miscompiles.
      std::string page = std::string("SELECT url_id FROM url_table ") +
                                   (first ? "" : "WHERE url_id > $1 ") + "ORDER BY url_id LIMIT " +
                                   std::to_string(batch_rows);
      std::vector<std::string> page_args = first ? args() : args(after);
      auto rows = co_await sql(peer, std::move(page), std::move(page_args));
      for (int r = 0; r < rows.rows(); ++r) {
        const std::string_view id = rows.get(r, 0);
        if (old_ring_.owner_of(id) != *peer.old_node) {
          if (misplaced.first++ == 0) misplaced.second = std::string(id);
        }
        const auto& owner = new_ring_.nodes()[new_ring_.owner_of(id)].name;
        if (owner != peer.name) ++leaving[owner];
      }
      rows_here += rows.rows();
      if (rows.rows() < batch_rows) break;
      after = std::string(rows.get(rows.rows() - 1, 0));
      co_await pause(page_started);
    }
    rows_[peer.name] = rows_here;
    for (auto& pair : pairs_) {
      if (pair.source == static_cast<std::size_t>(&peer - peers_.data())) {
        pair.planned = leaving[peers_[pair.target].name];
      }
    }
  }
}

void Reshard::print_plan() {
  std::map<std::size_t, std::int64_t> rows_on;  // links on each source, for the prediction
  out_ << "ring version " << version_ << " -> " << next_ << " ("
       << ring::to_string(old_ring_.hash()) << "): " << old_ring_.nodes().size() << " -> "
       << new_ring_.nodes().size() << " shards\n";
  std::int64_t total = 0;
  double predicted = 0;
  std::int64_t all_rows = 0;
  for (const auto& [name, rows] : rows_) all_rows += rows;
  out_ << std::left << std::setw(16) << "from" << std::setw(16) << "to" << std::right
       << std::setw(12) << "links" << std::setw(14) << "predicted" << "\n";
  for (const auto& pair : pairs_) {
    const double expect = pair.share * static_cast<double>(all_rows);
    out_ << std::left << std::setw(16) << peers_[pair.source].name << std::setw(16)
         << peers_[pair.target].name << std::right << std::setw(12) << pair.planned
         << std::setw(14) << static_cast<std::int64_t>(std::llround(expect)) << "\n";
    total += pair.planned;
    predicted += expect;
  }
  out_ << std::left << std::setw(32) << "total" << std::right << std::setw(12) << total
       << std::setw(14) << static_cast<std::int64_t>(std::llround(predicted)) << "   of "
       << all_rows << " links (" << std::fixed << std::setprecision(1)
       << (all_rows > 0 ? 100.0 * static_cast<double>(total) / static_cast<double>(all_rows) : 0.0)
       << " %; the ring predicts " << (all_rows > 0 ? 100.0 * predicted / static_cast<double>(all_rows) : 0.0)
       << " %)\n";
  out_.unsetf(std::ios::fixed);
}

// A new token for `pair`'s marker, written on its source: once the target shows it, everything
// the source committed before it has been applied there.
asio::awaitable<std::string> Reshard::mark(Pair& pair) {
  const std::string token = std::to_string(random_());
  co_await sql(peers_[pair.source],
               "INSERT INTO shardurl_move_marker (pair, token) VALUES ($1, $2) ON CONFLICT (pair) "
               "DO UPDATE SET token = excluded.token, at = clock_timestamp()", args(pair.name, token));
  co_return token;
}

asio::awaitable<void> Reshard::copy() {
  for (auto& pair : pairs_) {
    Peer& source = peers_[pair.source];
    Peer& target = peers_[pair.target];
    auto published = co_await sql(source, "SELECT count(*) FROM pg_publication WHERE pubname = $1", args(pair.name));
    if (published.get(0, 0) == "0") {
      co_await sql(source, "INSERT INTO shardurl_move_marker (pair, token) VALUES ($1, 'start') "
                           "ON CONFLICT (pair) DO NOTHING", args(pair.name));
      // The shard-local id stays behind: the target numbers its rows itself.
      co_await script(source, "CREATE PUBLICATION " + pair.name +
                                  " FOR TABLE url_table (url_id, url, created_at, deleted_at) WHERE (" +
                                  pair.moving + "), TABLE shardurl_move_marker WHERE (pair = " +
                                  literal(pair.name) + ")");
    }
    auto subscribed = co_await sql(target, "SELECT count(*) FROM pg_subscription WHERE subname = $1", args(pair.name));
    if (subscribed.get(0, 0) == "0") {
      // Rows an earlier attempt copied (its subscription is gone): the copy brings them again.
      co_await script(target, "DELETE FROM url_table WHERE " + pair.leftovers +
                                  "; DELETE FROM shardurl_move_marker WHERE pair = " +
                                  literal(pair.name));
      // A slot an earlier attempt left on the source (its subscription was dropped without it).
      co_await sql(source,
                   "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                   "WHERE slot_name = $1 AND NOT active", args(pair.name));
      const std::string conninfo = source.config.replication_conninfo.empty()
                                       ? source.config.conninfo
                                       : source.config.replication_conninfo;
      co_await script(target, "CREATE SUBSCRIPTION " + pair.name + " CONNECTION " +
                                  literal(conninfo) + " PUBLICATION " + pair.name +
                                  " WITH (copy_data = true, create_slot = true, slot_name = " +
                                  literal(pair.name) + ")");
    }
  }
}

asio::awaitable<void> Reshard::progress() {
  for (auto& pair : pairs_) {
    Peer& target = peers_[pair.target];
    auto state = co_await sql(
        target,
        "SELECT r.srsubstate, (SELECT p.tuples_processed FROM pg_stat_subscription st "
        "JOIN pg_stat_progress_copy p ON p.pid = st.pid WHERE st.subname = s.subname "
        "AND st.relid = 'url_table'::regclass) FROM pg_subscription s JOIN pg_subscription_rel r "
        "ON r.srsubid = s.oid WHERE s.subname = $1 AND r.srrelid = 'url_table'::regclass", args(pair.name));
    pair.state = state.rows() ? std::string(state.get(0, 0)) : "?";
    if (pair.state == "r" || pair.state == "s") {
      pair.copied = pair.planned;
    } else if (state.rows() && !state.is_null(0, 1)) {
      pair.copied = std::max(pair.copied, to_int(state.get(0, 1)));
    }
  }
}

void Reshard::print_progress(bool final) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - copy_started_).count();
  std::vector<std::string> lines;
  for (const auto& pair : pairs_) {
    const double fraction =
        pair.planned > 0 ? std::min(1.0, static_cast<double>(pair.copied) / static_cast<double>(pair.planned)) : 1.0;
    const double rate = elapsed > 0 ? static_cast<double>(pair.copied) / elapsed : 0;
    std::ostringstream line;
    line << std::left << std::setw(10) << peers_[pair.source].name << " -> " << std::setw(10)
         << peers_[pair.target].name << " ";
    if (options_.terminal) {
      const int width = 30;
      const int filled = static_cast<int>(fraction * width);
      line << '[' << std::string(static_cast<std::size_t>(filled), '#')
           << std::string(static_cast<std::size_t>(width - filled), '.') << "] ";
    }
    line << pair.copied << "/" << pair.planned << " rows (" << std::fixed << std::setprecision(0)
         << 100 * fraction << " %), " << rate << " rows/s";
    if (pair.lag_ms >= 0) line << ", lag " << pair.lag_ms << " ms";
    if (fraction < 1 && rate > 0) {
      line << ", ETA " << duration_text(static_cast<double>(pair.planned - pair.copied) / rate);
    }
    line << (pair.state == "r" ? ", streaming" : pair.state == "d" ? ", copying" : "");
    lines.push_back(line.str());
  }
  if (options_.terminal && drawn_) out_ << "\x1b[" << lines.size() << "F";
  for (const auto& line : lines) out_ << (options_.terminal ? "\x1b[2K" : "") << line << "\n";
  drawn_ = options_.terminal && !final;
  out_.flush();
}

// Waits for every pair's initial copy and for the targets to be close behind their sources.
asio::awaitable<bool> Reshard::catch_up() {
  auto last_print = Clock::now() - seconds(10);
  for (;;) {
    co_await progress();
    bool ready = true;
    for (auto& pair : pairs_) {
      if (pair.state != "r") {
        ready = false;
        continue;
      }
      // Lag: how long a marker written on the source takes to appear on the target.
      const auto started = Clock::now();
      const std::string token = co_await mark(pair);
      for (;;) {
        auto seen = co_await sql(peers_[pair.target],
                                 "SELECT token FROM shardurl_move_marker WHERE pair = $1", args(pair.name));
        if (seen.rows() && seen.get(0, 0) == token) break;
        if (Clock::now() - started > seconds(2)) break;
        co_await sleep(milliseconds(5));
      }
      pair.lag_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
      if (pair.lag_ms > static_cast<double>(small_lag.count())) ready = false;
    }
    const bool print_now = Clock::now() - last_print >= (options_.terminal ? milliseconds(300) : seconds(3));
    if (ready || print_now) {
      print_progress(ready);
      last_print = Clock::now();
    }
    if (ready) co_return true;
    co_await sleep(milliseconds(200));
  }
}

asio::awaitable<void> Reshard::lift_fences() {
  for (auto& peer : peers_) {
    co_await script(peer,
                    "BEGIN; DROP TRIGGER IF EXISTS shardurl_fence_write ON url_table; "
                    "DROP TRIGGER IF EXISTS shardurl_fence_delete ON url_table; "
                    "DELETE FROM shardurl_meta WHERE key = 'fence_until'; COMMIT");
  }
}

// Fences the moving links' writes on every source, waits until every target has applied its
// source up to the fence, and makes the fences permanent: true when done (the point of no return),
// false when a target was too slow and the fences were lifted again.
asio::awaitable<bool> Reshard::cutover() {
  std::map<std::size_t, bool> sources;
  for (const auto& pair : pairs_) sources[pair.source] = true;
  const auto fenced_at = Clock::now();
  for (const auto& [index, unused] : sources) {
    Peer& source = peers_[index];
    // Writes to a link whose new owner is another shard: refused (held by the instances) until
    // the new ring is served. A source that leaves the ring keeps nothing.
    const std::string stays_new =
        source.new_node ? owned_by_sql(new_ring_, *source.new_node, "NEW.url_id") : "false";
    const std::string stays_old =
        source.new_node ? owned_by_sql(new_ring_, *source.new_node, "OLD.url_id") : "false";
    co_await script(
        source,
        "BEGIN; INSERT INTO shardurl_meta (key, value) VALUES ('fence_until', "
        "(clock_timestamp() + interval '" + std::to_string(fence_lapse.count()) +
            " seconds')::text) ON CONFLICT (key) DO UPDATE SET value = excluded.value; "
            "CREATE OR REPLACE TRIGGER shardurl_fence_write BEFORE INSERT OR UPDATE ON url_table "
            "FOR EACH ROW WHEN (NOT (" + stays_new + ")) EXECUTE FUNCTION shardurl_fence(); "
            "CREATE OR REPLACE TRIGGER shardurl_fence_delete BEFORE DELETE ON url_table "
            "FOR EACH ROW WHEN (NOT (" + stays_old + ")) EXECUTE FUNCTION shardurl_fence(); COMMIT");
  }
  // Every source's marker, written after its fence: seen on the target, the target has it all.
  std::vector<std::string> tokens;
  for (auto& pair : pairs_) tokens.push_back(co_await mark(pair));
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    for (;;) {
      auto seen = co_await sql(peers_[pairs_[i].target],
                               "SELECT token FROM shardurl_move_marker WHERE pair = $1", args(pairs_[i].name));
      if (seen.rows() && seen.get(0, 0) == tokens[i]) break;
      if (Clock::now() - fenced_at > fence_wait) {
        co_await lift_fences();
        out_ << "cutover: " << peers_[pairs_[i].target].name << " did not reach the fence within "
             << fence_wait.count() << " ms; writes let through again, trying once more\n";
        co_return false;
      }
      co_await sleep(milliseconds(2));
    }
  }
  // Permanent, but only where the fence has not lapsed meanwhile.
  for (const auto& [index, unused] : sources) {
    auto kept = co_await sql(peers_[index],
                             "UPDATE shardurl_meta SET value = 'infinity' WHERE key = 'fence_until' "
                             "AND value::timestamptz > clock_timestamp() RETURNING 1");
    if (kept.rows() == 0) {
      co_await lift_fences();
      out_ << "cutover: the fence on " << peers_[index].name
           << " lapsed before it could be kept; trying once more\n";
      co_return false;
    }
  }
  const double held_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - fenced_at).count();
  out_ << "cutover: every target has every moving link; writes to them were held for "
       << std::fixed << std::setprecision(0) << held_ms << " ms so far\n";
  out_.unsetf(std::ios::fixed);
  co_return true;
}

// Waits until every shardurl instance the shards see serves the new ring (each names its ring in
// its probe session's application_name), for up to ack_wait: a straggler is only reported, since a
// shard refuses every statement routed by an older ring anyway (SQLSTATE SU001).
asio::awaitable<void> Reshard::wait_for_instances() {
  const auto give_up = Clock::now() + ack_wait;
  const auto started = Clock::now();
  std::vector<std::string> behind;
  do {
    behind.clear();
    for (auto& peer : peers_) {
      auto rows = co_await sql(peer,
                               "SELECT application_name FROM pg_stat_activity WHERE "
                               "application_name LIKE 'shardurl % ring %'");
      for (int r = 0; r < rows.rows(); ++r) {
        const std::string name(rows.get(r, 0));
        const auto at = name.rfind(" ring ");
        const auto version = to_int(std::string_view(name).substr(at + 6));
        if (version < static_cast<std::int64_t>(next_)) behind.push_back(name + " on " + peer.name);
      }
    }
    if (behind.empty()) break;
    co_await sleep(milliseconds(50));
  } while (Clock::now() < give_up);
  if (behind.empty()) {
    out_ << "every running instance serves ring version " << next_ << " ("
         << std::chrono::duration_cast<milliseconds>(Clock::now() - started).count()
         << " ms after the switch)\n";
  } else {
    out_ << "not acknowledged after " << ack_wait.count() << " s (their statements are refused "
         << "by every shard until they follow): " << behind.front()
         << (behind.size() > 1 ? " and " + std::to_string(behind.size() - 1) + " more" : "")
         << "\n";
  }
}

// Rows the tutorial left keep their tutorial ids only if a create asks the shard they sit on:
// each target counts them again once it has its copies (before the switch), when any source had
// some.
asio::awaitable<void> Reshard::count_tutorial_ids() {
  bool any = false;
  for (const auto& pair : pairs_) {
    co_await read_meta(peers_[pair.source]);
    any = any || to_int(peers_[pair.source].meta["tutorial_ids"]) > 0;
  }
  if (!any) co_return;
  std::map<std::size_t, bool> targets;
  for (const auto& pair : pairs_) targets[pair.target] = true;
  for (const auto& [index, unused] : targets) {
    co_await sql(peers_[index],
                 "UPDATE shardurl_meta SET value = (SELECT count(*) FROM url_table WHERE "
                 "length(url_id) = 5 AND url_id = left(encode(sha256(convert_to(url, 'UTF8')), "
                 "'base64'), 5))::text WHERE key = 'tutorial_ids'");
  }
}

// Every moving row of every source is on its target: with its URL and creation time, and deleted
// if it was deleted on the source (a link deleted since the switch is deleted on the target only).
// One pass over each source in url_id order (its index); the ring decides, here, which rows
// moved, so the shard only reads its index and rows.
asio::awaitable<void> Reshard::verify() {
  std::map<std::size_t, bool> sources;
  for (const auto& pair : pairs_) sources[pair.source] = true;
  for (const auto& [index, unused] : sources) {
    Peer& source = peers_[index];
    std::map<std::size_t, std::int64_t> checked;  // by target peer
    std::int64_t bad = 0;
    std::string example;
    std::string after;
    for (bool first = true;; first = false) {
      const auto page_started = Clock::now();
      // Named first: a conditional inside a co_await expression is what GCC 12 miscompiles.
      std::string page =
          std::string("SELECT url_id, url, created_at::text, deleted_at IS NOT NULL FROM url_table ") +
          (first ? "" : "WHERE url_id > $1 ") + "ORDER BY url_id LIMIT " + std::to_string(batch_rows);
      std::vector<std::string> page_args = first ? args() : args(after);
      auto rows = co_await sql(source, std::move(page), std::move(page_args));
      if (rows.rows() == 0) break;
      // The rows of this page that moved, by target.
      std::map<std::size_t, std::vector<int>> moved;
      for (int r = 0; r < rows.rows(); ++r) {
        const auto owner = new_ring_.owner_of(rows.get(r, 0));
        const auto& name = new_ring_.nodes()[owner].name;
        if (name == source.name) continue;
        for (std::size_t p = 0; p < peers_.size(); ++p) {
          if (peers_[p].name == name) moved[p].push_back(r);
        }
      }
      for (const auto& [target, indices] : moved) {
        std::string ids = "{";
        for (const int r : indices) {
          if (ids.size() > 1) ids += ',';
          ids += '"';
          for (const char c : rows.get(r, 0)) {
            if (c == '"' || c == '\\') ids += '\\';
            ids += c;
          }
          ids += '"';
        }
        ids += '}';
        auto there = co_await sql(peers_[target],
                                  "SELECT url_id, url, created_at::text, deleted_at IS NOT NULL FROM "
                                  "url_table WHERE url_id = ANY($1::text[])",
                                  args(ids));
        std::map<std::string, std::tuple<std::string, std::string, bool>> found;
        for (int r = 0; r < there.rows(); ++r) {
          found[std::string(there.get(r, 0))] = {std::string(there.get(r, 1)),
                                                 std::string(there.get(r, 2)), there.get(r, 3) == "t"};
        }
        for (const int r : indices) {
          const auto it = found.find(std::string(rows.get(r, 0)));
          // The target is the link's owner since the switch: a live link may have been deleted
          // there since, a deleted one restored (with another URL); its creation is its own.
          const bool deleted_here = rows.get(r, 3) == "t";
          const bool ok = it != found.end() && std::get<1>(it->second) == rows.get(r, 2) &&
                          (deleted_here || std::get<0>(it->second) == rows.get(r, 1));
          if (!ok) {
            ++bad;
            if (example.empty()) example = std::string(rows.get(r, 0));
          }
        }
        checked[target] += static_cast<std::int64_t>(indices.size());
      }
      after = std::string(rows.get(rows.rows() - 1, 0));
      if (rows.rows() < batch_rows) break;
      co_await pause(page_started);
    }
    if (bad != 0) {
      throw Failure("verify: " + std::to_string(bad) + " links moving from " + source.name +
                    " differ on their target (e.g. '" + example +
                    "'); nothing was removed from the sources; look at both shards, then run "
                    "this again");
    }
    for (const auto& [target, count] : checked) {
      out_ << "verify: " << source.name << " -> " << peers_[target].name << ": " << count
           << " links, every one on the target\n";
    }
  }
}

// Once every shard serves the new ring, replication has nothing more to carry and the fences have
// done their work (every shard refuses statements routed by the old ring: SU001): both go at once,
// before the verify and the deletes, so that the sources' writes stop paying for them.
asio::awaitable<void> Reshard::drop_replication() {
  for (auto& pair : pairs_) {
    Peer& source = peers_[pair.source];
    Peer& target = peers_[pair.target];
    // The subscription first: it drops its slot on the source, and nothing the source deletes
    // below may reach the target. (And the reachability check's, if a run died in it.)
    co_await script(target, "DROP SUBSCRIPTION IF EXISTS " + pair.name);
    co_await script(target, "DROP SUBSCRIPTION IF EXISTS " + pair.name + "_check");
    co_await script(source, "DROP PUBLICATION IF EXISTS " + pair.name);
  }
  // Slots an interrupted attempt may have left (its own, and its initial copy's).
  for (auto& peer : peers_) {
    co_await sql(peer,
                 "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                 "slot_name LIKE 'shardurl\\_v%' AND NOT active");
  }
  co_await lift_fences();
}

asio::awaitable<void> Reshard::cleanup() {
  std::map<std::size_t, bool> sources;
  for (const auto& pair : pairs_) sources[pair.source] = true;
  for (const auto& [index, unused] : sources) {
    Peer& source = peers_[index];
    // One pass in url_id order (its index); the ring decides here which rows left.
    std::int64_t deleted = 0;
    std::string after;
    for (bool first = true;; first = false) {
      const auto page_started = Clock::now();
      // Named first: a conditional inside a co_await expression is what GCC 12 miscompiles.
      std::string page = std::string("SELECT url_id FROM url_table ") +
                                   (first ? "" : "WHERE url_id > $1 ") + "ORDER BY url_id LIMIT " +
                                   std::to_string(batch_rows);
      std::vector<std::string> page_args = first ? args() : args(after);
      auto rows = co_await sql(source, std::move(page), std::move(page_args));
      if (rows.rows() == 0) break;
      std::string ids = "{";
      for (int r = 0; r < rows.rows(); ++r) {
        if (new_ring_.nodes()[new_ring_.owner_of(rows.get(r, 0))].name == source.name) continue;
        if (ids.size() > 1) ids += ',';
        ids += '"';
        for (const char c : rows.get(r, 0)) {
          if (c == '"' || c == '\\') ids += '\\';
          ids += c;
        }
        ids += '"';
      }
      ids += '}';
      after = std::string(rows.get(rows.rows() - 1, 0));
      if (ids.size() > 2) {
        auto gone = co_await sql(source, "DELETE FROM url_table WHERE url_id = ANY($1::text[])",
                                 args(ids));
        deleted += static_cast<std::int64_t>(gone.affected_rows());
      }
      if (rows.rows() < batch_rows) break;
      co_await pause(page_started);
    }
    out_ << "cleanup: " << source.name << ": " << deleted << " moved links removed\n";
  }
  for (auto& peer : peers_) {
    co_await script(peer, "DELETE FROM shardurl_move_marker WHERE pair LIKE 'shardurl\\_v%'");
  }
  {
    const MetaValues values{{"move", ""}, {"fence_until", ""}};
    co_await write_meta_everywhere(values, false);
  }
}

void Reshard::add_peers(const Config& config) {
  for (const auto& shard : config.shards) {
    if (std::any_of(peers_.begin(), peers_.end(),
                    [&](const Peer& p) { return p.name == shard.name; })) {
      continue;
    }
    if (shard.conninfo.empty()) {
      throw Failure("shard " + shard.name + " has no conninfo in the config files");
    }
    Peer peer;
    peer.name = shard.name;
    peer.config = shard;
    peers_.push_back(std::move(peer));
  }
  for (auto& peer : peers_) {
    peer.old_node.reset();
    peer.new_node.reset();
    for (std::size_t i = 0; i < old_ring_.nodes().size(); ++i) {
      if (old_ring_.nodes()[i].name == peer.name) peer.old_node = i;
    }
    for (std::size_t i = 0; i < new_ring_.nodes().size(); ++i) {
      if (new_ring_.nodes()[i].name == peer.name) peer.new_node = i;
    }
  }
}

asio::awaitable<int> Reshard::run() {
  // Every shard of either ring, by name; NEW.json's connection string where it names the shard.
  Config files = to_;
  for (const auto& shard : from_.shards) {
    if (std::none_of(files.shards.begin(), files.shards.end(),
                     [&](const ShardConfig& s) { return s.name == shard.name; })) {
      files.shards.push_back(shard);
    }
  }
  add_peers(to_);
  add_peers(from_);
  if (old_ring_.hash() != new_ring_.hash()) {
    throw Failure("the two files use different ring hashes (" +
                  std::string(ring::to_string(old_ring_.hash())) + ", " +
                  std::string(ring::to_string(new_ring_.hash())) +
                  "): every link would move; reshard changes shards, weights and vnodes only");
  }
  for (auto& peer : peers_) co_await connect(peer);
  for (auto& peer : peers_) co_await read_meta(peer);

  // Where the cluster is: the newest ring any shard serves, and a move in progress (the least
  // advanced state any shard holds of it: they are written shard after shard).
  std::string current_topology;
  std::string move;
  constexpr std::array<std::string_view, 4> phases = {"copy", "cutover", "verify", "cleanup"};
  const auto rank = [&](const std::string& state) {
    const auto phase = std::string(json::parse(state).as_object().at("phase").as_string());
    return std::find(phases.begin(), phases.end(), phase) - phases.begin();
  };
  for (auto& peer : peers_) {
    const auto v = to_int(peer.meta["ring_version"]);
    if (v > static_cast<std::int64_t>(version_)) {
      version_ = static_cast<std::uint64_t>(v);
      current_topology = peer.meta["topology"];
    }
    const std::string& here = peer.meta["move"];
    if (!here.empty() && (move.empty() || rank(here) < rank(move))) move = here;
  }
  const Config current = current_topology.empty()
                             ? from_
                             : topology_from_json(version_, current_topology, files).config();
  std::string phase = "copy";
  if (!move.empty()) {
    const auto state = json::parse(move).as_object();
    const Config recorded_old = topology_from_json(0, json::serialize(state.at("old")), files).config();
    const Config recorded_new = topology_from_json(0, json::serialize(state.at("new")), files).config();
    if (!same_ring(recorded_new, to_)) {
      throw Failure("a reshard to another ring (version " +
                    std::to_string(state.at("to").to_number<std::uint64_t>()) +
                    ") is in progress: run it again with its own --to file to finish it first");
    }
    if (!same_ring(from_, recorded_old) && !same_ring(from_, recorded_new)) {
      throw Failure("--config is neither the ring this reshard moves from nor the one it moves to: "
                    "give the config the cluster served when the reshard started");
    }
    // The move's own record decides what moves, whatever --config says (it may be NEW already).
    from_ = recorded_old;
    old_ring_ = make_ring(from_);
    add_peers(from_);
    for (auto& peer : peers_) {
      if (!peer.conn) {
        co_await connect(peer);
        co_await read_meta(peer);
      }
    }
    next_ = state.at("to").to_number<std::uint64_t>();
    version_ = state.at("from").to_number<std::uint64_t>();
    started_ = std::string(state.at("started").as_string());
    phase = std::string(state.at("phase").as_string());
    out_ << "resuming the reshard to ring version " << next_ << " started " << started_
         << " (it was at: " << phase << ")\n";
  } else if (same_ring(current, to_)) {
    out_ << "nothing to do: the cluster serves this ring already (version " << version_ << ")\n";
    co_return 0;
  } else if (!same_ring(current, from_)) {
    throw Failure("the cluster serves ring version " + std::to_string(version_) +
                  ", which is not the one in --config: give the config the cluster serves now");
  } else {
    // Version 0 is every config file's: record the ring first, so that an instance started with
    // either file later finds the cluster's own.
    next_ = version_ == 0 ? 2 : version_ + 1;
    started_ = now_text();
  }

  co_await plan();
  print_plan();
  if (options_.dry_run) {
    co_await check_preconditions();
    out_ << "preconditions hold; nothing changed (--dry-run)\n";
    co_return 0;
  }
  if (move.empty()) {
    co_await check_preconditions();
    if (version_ == 0) {
      // Version 1: the ring the files gave every instance, now kept on the shards.
      const auto saved = next_;
      next_ = 1;
      const MetaValues first{{"ring_version", "1"}, {"topology", Topology(1, from_).to_json()}};
      co_await write_meta_everywhere(first, true);
      next_ = saved;
      version_ = 1;
    }
    const MetaValues copying{{"move", move_json("copy")}};
    co_await write_meta_everywhere(copying, false);
  }

  if (phase == "copy" || phase == "cutover") {
    if (phase == "cutover") {
      // Fences that are all permanent were the point of no return; otherwise start the cutover
      // again (the instances were still writing to the sources on the old ring).
      bool permanent = !pairs_.empty();
      for (const auto& pair : pairs_) {
        co_await read_meta(peers_[pair.source]);
        permanent = permanent && peers_[pair.source].meta["fence_until"] == "infinity";
      }
      if (!permanent) co_await lift_fences();
      phase = permanent ? "switch" : "copy";
    }
    if (phase == "copy") {
      co_await copy();
      copy_started_ = Clock::now();
      for (;;) {
        co_await catch_up();
        co_await count_tutorial_ids();
        {
          const MetaValues values{{"move", move_json("cutover")}};
          co_await write_meta_everywhere(values, false);
        }
        if (co_await cutover()) break;
      }
      phase = "switch";
    }
  }
  if (phase == "switch") {
    const MetaValues switched{{"ring_version", std::to_string(next_)},
                              {"topology", Topology(next_, to_).to_json()},
                              {"move", move_json("verify")}};
    co_await write_meta_everywhere(switched, true);
    out_ << "switched: every shard serves ring version " << next_ << "\n";
    co_await wait_for_instances();
    phase = "verify";
  }
  if (phase == "verify") {
    co_await drop_replication();
    co_await verify();
    const MetaValues cleaning{{"move", move_json("cleanup")}};
    co_await write_meta_everywhere(cleaning, false);
    phase = "cleanup";
  }
  if (phase == "cleanup") {
    co_await drop_replication();
    co_await cleanup();
  }
  out_ << "done: the cluster serves ring version " << next_ << "; nothing moved is left behind\n";
  co_return 0;
}

}  // namespace

int reshard(const Config& from, const Config& to, const ReshardOptions& options, std::ostream& out,
            std::ostream& err) {
  out.setf(std::ios::unitbuf);  // progress as it happens, also into a pipe or a log
  asio::io_context io(1);
  int status = 1;
  Reshard job(from, to, options, out);
  asio::co_spawn(io, job.run(), [&](std::exception_ptr e, int result) {
    if (!e) {
      status = result;
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const Failure& f) {
      err << "shardurl reshard: " << f.what() << "\n";
    } catch (const std::exception& x) {
      err << "shardurl reshard: " << x.what() << "\n";
    }
    status = 1;
  });
  io.run();
  return status;
}

}  // namespace shardurl

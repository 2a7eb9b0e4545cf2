#include "change_feed.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>

#include "link_cache.hpp"
#include "log.hpp"
#include "pgasync/connection.hpp"

namespace shardurl {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// A channel name no other session uses, for this feed's heartbeats.
std::string heartbeat_channel() {
  std::random_device random;
  const auto bits = (std::uint64_t{random()} << 32) | random();
  char text[40];
  std::snprintf(text, sizeof text, "shardurl_hb_%016llx", static_cast<unsigned long long>(bits));
  return text;
}

}  // namespace

struct ChangeFeed::State : std::enable_shared_from_this<ChangeFeed::State> {
  State(asio::any_io_executor ex, std::size_t i, std::string n, std::string info,
        const CacheGroup& c, FeedTiming t, std::function<void()> topology)
      : home(std::move(ex)),
        shard(i),
        name(std::move(n)),
        conninfo(std::move(info)),
        caches(c),
        timing(t),
        on_topology(std::move(topology)),
        channel(heartbeat_channel()) {}

  asio::any_io_executor home;
  std::size_t shard;
  std::string name;
  std::string conninfo;
  const CacheGroup& caches;
  FeedTiming timing;
  std::function<void()> on_topology;
  std::string channel;
  std::atomic<bool> closed{false};
  std::atomic<bool> echoing{false};
  // Home thread only: what was last logged, so each change of state is logged once.
  enum class Reported { nothing, up, down, silent } reported = Reported::nothing;

  void report(Reported now, const std::string& why = {}) {
    if (now == reported) return;
    const bool first = reported == Reported::nothing;
    reported = now;
    switch (now) {
      case Reported::up:
        log::info("shard " + name + ": change notifications " + (first ? "on" : "back") +
                      ": its links are served from the cache",
                  {{"shard", name}, {"event", "feed_up"}});
        break;
      case Reported::down:
        log::warning("shard " + name + ": change notifications lost (" + why +
                         "): its links are read from the shard until they are back",
                     {{"shard", name}, {"event", "feed_down"}, {"error", why}});
        break;
      case Reported::silent:
        log::warning("shard " + name +
                         ": change notifications are not delivered (no heartbeat came back; "
                         "is a transaction-mode pooler on the way? give the shard a "
                         "listen_conninfo): its links are read from the shard",
                     {{"shard", name}, {"event", "feed_silent"}});
        break;
      case Reported::nothing: break;
    }
  }

  void pause_serving() {
    echoing = false;
    caches.post_reset_shard(shard);
  }

  asio::awaitable<void> sleep(std::chrono::milliseconds how_long) {
    asio::steady_timer timer(home, how_long);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    while (!closed) {
      auto conn = co_await pgasync::Connection::connect(home, conninfo,
                                                        Clock::now() + timing.connect);
      if (!conn) {
        report(Reported::down, conn.error().describe());
        co_await sleep(timing.retry);
        continue;
      }
      // The heartbeat's commit needs no flush to disk: it only orders notifications.
      const std::string setup = "SET synchronous_commit TO off; SET application_name TO "
                                "'shardurl change feed'; LISTEN " +
                                std::string(links_channel) + "; LISTEN " +
                                std::string(topology_channel) + "; LISTEN " + channel;
      if (auto ran = co_await conn->execute_script(setup, Clock::now() + timing.query); !ran) {
        report(Reported::down, ran.error().describe());
        co_await sleep(timing.retry);
        continue;
      }
      // Changes made while no session listened were never announced to us.
      caches.post_reset_shard(shard);
      co_await follow(*conn);
      pause_serving();
      if (!closed) co_await sleep(timing.retry);
    }
  }

  // Evicts what `notes` announce; true when the heartbeat `beat` is among them.
  bool handle(const std::vector<pgasync::Notification>& notes, std::string_view beat) {
    bool echoed = false;
    for (const auto& note : notes) {
      if (note.channel == links_channel) {
        caches.post_evict(note.payload);
      } else if (note.channel == topology_channel) {
        if (on_topology) on_topology();
      } else if (note.channel == channel && note.payload == beat) {
        echoed = true;
      }
    }
    return echoed;
  }

  // Heartbeats and notifications on one session, until it fails or the feed closes.
  asio::awaitable<void> follow(pgasync::Connection& conn) {
    int missed = 0;
    for (std::uint64_t seq = 1; !closed; ++seq) {
      const auto sent = Clock::now();
      const std::string beat = std::to_string(seq);
      auto notified = co_await conn.query("SELECT pg_notify($1, $2)", pgasync::params(channel, beat),
                                          sent + timing.query);
      if (!notified) {
        report(Reported::down, notified.error().describe());
        co_return;
      }
      bool echoed = handle(conn.take_notifications(), beat);
      bool answered = false;
      const auto next = sent + timing.heartbeat_every;
      for (;;) {
        if (echoed && !answered) {
          // Everything committed before `sent` has been evicted (posted before this).
          caches.post_fresh_until(shard, sent + timing.fresh_for);
          echoing = true;
          answered = true;
          report(Reported::up);
        }
        if (closed || Clock::now() >= next) break;
        auto notes = co_await conn.wait_notifications(next);
        if (!notes) {
          report(Reported::down, notes.error().describe());
          co_return;
        }
        echoed = handle(*notes, beat);
      }
      if (answered) {
        missed = 0;
      } else if (++missed >= 3) {
        // No echo for three beats on a session that answers: nothing is delivered to it.
        echoing = false;
        report(Reported::silent);
      }
    }
  }
};

ChangeFeed::ChangeFeed(asio::any_io_executor home, std::size_t shard, std::string name,
                       std::string conninfo, const CacheGroup& caches, FeedTiming timing,
                       std::function<void()> on_topology)
    : state_(std::make_shared<State>(std::move(home), shard, std::move(name), std::move(conninfo),
                                     caches, timing, std::move(on_topology))) {}

ChangeFeed::~ChangeFeed() {
  close();
}

void ChangeFeed::start() {
  asio::co_spawn(state_->home, state_->run(), asio::detached);
}

void ChangeFeed::close() noexcept {
  state_->closed = true;
}

bool ChangeFeed::current() const noexcept {
  return state_->echoing;
}

}  // namespace shardurl

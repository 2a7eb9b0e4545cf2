// Where links are stored: all of shardurl's SQL lives here. The ring picks the shard that owns an
// id, and that shard's pool runs the statement.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "ring/ring.hpp"

namespace shardurl {

namespace pgasync {
class ShardPool;
}

struct Link {
  std::string id;
  std::string url;
};

struct CreatedLink {
  Link link;
  bool created = false;  // false: the URL already had this link
};

/// A failure that is not the caller's fault: the owning shard could not answer.
struct StoreError {
  enum class Kind { shard_unavailable, shard_timeout, internal } kind = Kind::internal;
  std::string shard;   // the shard's name, for the client and the log
  std::string detail;  // for the log only: it can hold server internals
};

template <class T>
using StoreResult = boost::system::result<T, StoreError>;

[[noreturn]] void throw_exception_from_error(const StoreError& e, const boost::source_location&);

class LinkRepository {
 public:
  /// One pool per shard, in ring order, on `executor`. `ring` must outlive the repository.
  LinkRepository(boost::asio::any_io_executor executor, const Config& config,
                 const ring::Ring& ring);
  ~LinkRepository();
  LinkRepository(const LinkRepository&) = delete;
  LinkRepository& operator=(const LinkRepository&) = delete;

  /// The link stored under `id`, or std::nullopt when there is none (an expected miss).
  boost::asio::awaitable<StoreResult<std::optional<Link>>> find(std::string id);

  /// Stores `url` under the shortest free prefix of its digest (7 characters first), or returns the
  /// link it already has. Race-free: the unique constraint on url_id decides, never a prior check.
  boost::asio::awaitable<StoreResult<CreatedLink>> create(std::string url);

  /// Tries every shard once and logs whether it is up; never fails. Run at start-up.
  boost::asio::awaitable<void> report_shards();

  /// Closes every pool: later calls fail fast.
  void close() noexcept;

  [[nodiscard]] const ring::Ring& ring() const noexcept { return ring_; }

 private:
  const ring::Ring& ring_;
  std::vector<std::unique_ptr<pgasync::ShardPool>> pools_;  // pools_[i] serves ring.nodes()[i]
  std::chrono::milliseconds timeout_;
};

}  // namespace shardurl

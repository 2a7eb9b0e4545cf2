// `shardurl reshard --config OLD.json --to NEW.json`: moves exactly the links whose owner differs
// between the two rings, from their old shard to their new one, while every instance serves, with
// PostgreSQL's logical replication doing the moving. docs/resharding.md has the design, its steps
// and what happens when anything dies at each of them.
//
// The command reads as the list of its steps, each idempotent, its progress kept in the shards'
// own metadata (shardurl_meta.move), so that running it again after it was killed finishes the
// job, and running it after it finished changes nothing:
//
//   lock      one reshard at a time (an advisory lock on every shard)
//   check     the preconditions, each refused with one line that names the fix
//   plan      per (from, to) pair, the links that move, against what the ring predicts
//   prepare   the ring the cluster serves now is recorded on every shard (version V)
//   copy      per pair: a publication on the source whose row filter is the new owner's arcs of
//             the new ring, a subscription on the target (initial copy, then streaming)
//   catch up  every pair's replication lag is small
//   cutover   fence the moving links' writes on the sources (a trigger, lapsing after a few
//             seconds unless made permanent), wait until every target applied the sources' WAL up
//             to the fence, make the fences permanent, write ring V+1 to every shard and NOTIFY;
//             instances switch (writes held meanwhile for well under a second)
//   verify    every moved row of every source is on its target, as it was or deleted since
//   cleanup   drop subscriptions (and their slots), publications, fences; delete the moved rows
//             from their sources in batches; forget the move
#pragma once

#include <iosfwd>
#include <string>

#include "config.hpp"

namespace shardurl {

struct ReshardOptions {
  bool dry_run = false;
  /// Redraw progress bars in place (a terminal) rather than print a line every few seconds.
  bool terminal = false;
};

/// Runs the command: 0 once the cluster serves `to`'s ring and no moved row is left on its old
/// shard (or nothing had to move); 1 when a precondition or a step failed (one line on `err` says
/// why and what to do); the plan only with `dry_run`.
int reshard(const Config& from, const Config& to, const ReshardOptions& options, std::ostream& out,
            std::ostream& err);

}  // namespace shardurl

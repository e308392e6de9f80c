// Work spread over a few threads.
//   std::stop_source stop;
//   run_parallel(items.size(), 4, stop, [&](std::size_t i) { handle(items[i]); }, "pull");
#pragma once

#include <cstddef>
#include <functional>
#include <stop_token>
#include <string_view>

namespace stowage {

// Runs work(0..count-1) on up to `workers` threads (the caller's included). The first failure
// stops the others (through `stop`) and is rethrown once every thread has returned; a stop
// requested from outside ends in Error(kUnavailable, "<what>: cancelled").
void run_parallel(std::size_t count, int workers, std::stop_source& stop,
                  const std::function<void(std::size_t)>& work, std::string_view what);

}  // namespace stowage

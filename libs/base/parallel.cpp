#include "base/parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"

namespace stowage {

void run_parallel(std::size_t count, int workers, std::stop_source& stop,
                  const std::function<void(std::size_t)>& work, std::string_view what) {
  std::atomic<std::size_t> next{0};
  std::mutex mu;  // guards first
  std::exception_ptr first;
  auto loop = [&] {
    for (;;) {
      if (stop.stop_requested()) return;
      const std::size_t i = next.fetch_add(1);
      if (i >= count) return;
      try {
        work(i);
      } catch (...) {
        {
          std::lock_guard lock(mu);
          if (!first) first = std::current_exception();
        }
        stop.request_stop();
        return;
      }
    }
  };
  const std::size_t threads =
      std::min<std::size_t>(count, static_cast<std::size_t>(std::max(1, workers)));
  {
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(loop);
    loop();
  }
  if (first) std::rethrow_exception(first);
  if (next.load() < count) throw Error(Code::kUnavailable, fmt::format("{}: cancelled", what));
}

}  // namespace stowage

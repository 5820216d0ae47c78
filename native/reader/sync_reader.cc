#include "reader/sync_reader.h"

#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace uffd {

namespace {

// Longest single poll(2): how late a terminated Worker notices. Faults do not wait for it (poll
// returns as soon as one is queued); only an idle reader wakes this often.
constexpr int kSliceMs = 100;

int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

// Whether JavaScript can still run in `env`. Node refuses calls that run JS (this one, like
// napi_call_function, passes the check every such call makes first) once the environment is
// stopping: a Worker being terminated, or the process exiting.
bool CanRunJs(napi_env env) {
  napi_value undefined, result;
  if (napi_get_undefined(env, &undefined) != napi_ok) return false;
  return napi_coerce_to_bool(env, undefined, &result) == napi_ok;
}

}  // namespace

long ReadMessagesSync(napi_env env, int fd, uffd_msg* out, size_t max, int timeoutMs) {
  const int64_t deadline = timeoutMs < 0 ? -1 : NowMs() + timeoutMs;
  for (;;) {
    int wait = kSliceMs;
    if (deadline >= 0)
      wait =
          static_cast<int>(std::min<int64_t>(kSliceMs, std::max<int64_t>(0, deadline - NowMs())));
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, wait);
    if (n < 0 && errno != EINTR) return -errno;
    if (n > 0) {
      if (p.revents & POLLNVAL) return -EBADF;
      if (p.revents & POLLERR) return -EINVAL;  // before UFFDIO_API, or a blocking fd
      ssize_t got = read(fd, out, max * sizeof(uffd_msg));
      if (got > 0) return static_cast<long>(got / static_cast<ssize_t>(sizeof(uffd_msg)));
      // EAGAIN: another reader of the same uffd took the messages first.
      if (got < 0 && errno != EAGAIN && errno != EINTR) return -errno;
    }
    if (deadline >= 0 && NowMs() >= deadline) return 0;
    if (n == 0 && !CanRunJs(env)) return 0;
  }
}

}  // namespace uffd

#include "reader/teardown_registry.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "uffd/args.h"
#include "uffd/kernel_abi.h"

namespace uffd {

namespace {

struct Entry {
  napi_env env;
  int fd;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, end), disjoint
};

std::mutex gMutex;
std::map<const void*, Entry>& Entries() {
  static auto* entries = new std::map<const void*, Entry>();  // never destroyed: used at exit
  return *entries;
}
std::map<napi_env, int32_t>& ThreadIds() {
  static auto* ids = new std::map<napi_env, int32_t>();
  return *ids;
}

// [start, end) taken out of the disjoint spans.
void Subtract(std::vector<std::pair<uint64_t, uint64_t>>& spans, uint64_t start, uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> kept;
  for (const auto& s : spans) {
    if (s.second <= start || s.first >= end) {
      kept.push_back(s);
      continue;
    }
    if (s.first < start) kept.emplace_back(s.first, start);
    if (s.second > end) kept.emplace_back(end, s.second);
  }
  spans.swap(kept);
}

}  // namespace

void SetEnvThreadId(napi_env env, int32_t threadId) {
  std::lock_guard<std::mutex> lock(gMutex);
  ThreadIds()[env] = threadId;
}

void TrackForTeardown(napi_env env, const void* owner, int fd) {
  std::lock_guard<std::mutex> lock(gMutex);
  Entries()[owner] = Entry{env, fd, {}};
}

void DetachForTeardown(const void* owner) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = Entries().find(owner);
  if (it != Entries().end()) it->second.fd = -1;
}

void ForgetForTeardown(const void* owner) {
  std::lock_guard<std::mutex> lock(gMutex);
  Entries().erase(owner);
}

void NoteRegistered(const void* owner, uint64_t start, uint64_t length) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = Entries().find(owner);
  if (it == Entries().end()) return;
  Subtract(it->second.ranges, start, start + length);
  it->second.ranges.emplace_back(start, start + length);
}

void NoteUnregistered(const void* owner, uint64_t start, uint64_t length) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = Entries().find(owner);
  if (it != Entries().end()) Subtract(it->second.ranges, start, start + length);
}

// Under gMutex, so the owner cannot close the fd meanwhile: Forget takes it first.
int ReleaseThreads(int32_t threadId, int32_t exceptThreadId) {
  std::lock_guard<std::mutex> lock(gMutex);
  int released = 0;
  for (auto& [owner, e] : Entries()) {
    auto id = ThreadIds().find(e.env);
    int32_t tid = id == ThreadIds().end() ? 0 : id->second;
    if (e.fd < 0 || (threadId >= 0 ? tid != threadId : tid == exceptThreadId)) continue;
    for (const auto& r : e.ranges) {
      uffdio_range range{r.first, r.second - r.first};
      if (ioctl(e.fd, UFFDIO_UNREGISTER, &range) == 0) released++;
    }
    e.ranges.clear();
  }
  return released;
}

void InitTeardown(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadId", Napi::Function::New(
                                 env,
                                 [](const Napi::CallbackInfo& info) {
                                   SetEnvThreadId(info.Env(), ArgInt(info, 0));
                                   return info.Env().Undefined();
                                 },
                                 "setThreadId"));
  exports.Set("releaseThreads", Napi::Function::New(
                                    env,
                                    [](const Napi::CallbackInfo& info) {
                                      return Napi::Number::New(
                                          info.Env(),
                                          ReleaseThreads(ArgInt(info, 0), ArgInt(info, 1)));
                                    },
                                    "releaseThreads"));
}

}  // namespace uffd

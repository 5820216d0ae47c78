// Mapped memory exposed to JavaScript: private anonymous, shared memfd, or hugetlb. The
// buffer is an external ArrayBuffer over the mapping, detached by unmap().
#pragma once
#include <napi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace uffd {

// One mmap(2), shared by the Region object, its ArrayBuffer and the thread-pool accesses in
// flight; munmap happens at unmap() once no access is in flight, or when the last holder goes.
class Mapping {
 public:
  Mapping(uint8_t* addr, size_t length, int fd) : addr_(addr), length_(length), fd_(fd) {}
  uint8_t* addr() const { return addr_; }
  size_t length() const { return length_; }
  int fd() const { return fd_.load(); }
  bool live() const { return !unmapRequested_.load(); }
  // munmap has happened (live() turns false at unmap(), this once no access is in flight).
  bool released() const { return unmapped_.load(); }
  // JS thread: reads or writes are running (or waiting on a fault) on the thread pool, or a
  // source serves from the mapping (AcquireContaining), possibly on another thread's uffd.
  bool accessing() const { return accesses_.load() > 0; }

  void AddRef() { refs_.fetch_add(1); }  // a holder's thread, which holds a reference already
  void Release();                        // any thread
  void BeginAccess();                    // the JS thread of its Region
  void EndAccess();     // any thread (a source viewing another thread's Region ends there)
  void RequestUnmap();  // JS thread: now if idle, else when the last access ends

  // The live mapping that holds [p, p + length), with an access begun on it (end it with
  // EndAccess), or null: a JS buffer may be a view of another Region, whose unmap() must then
  // wait for the copy that reads it. Any thread.
  static Mapping* AcquireContaining(const void* p, size_t length);
  static void Track(Mapping* m);  // any thread: findable by AcquireContaining until unmapped

 private:
  ~Mapping() = default;
  void Unmap();
  bool TryAddRef();  // any thread, under gMappingsMutex: false once the last reference is gone

  uint8_t* addr_;
  size_t length_;
  std::atomic<int> fd_;
  std::atomic<int> refs_{1};
  std::atomic<int> accesses_{0};
  std::atomic<bool> unmapRequested_{false};
  std::atomic<bool> unmapped_{false};
};

class Region : public Napi::ObjectWrap<Region> {
 public:
  static Napi::Function Init(Napi::Env env);
  // JS: new Region(length, shared, hugetlb, aliasFd = -1, clone = false)
  explicit Region(const Napi::CallbackInfo& info);
  ~Region() override;

 private:
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Dontneed(const Napi::CallbackInfo& info);
  Napi::Value Protect(const Napi::CallbackInfo& info);
  Napi::Value Unmap(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value ResidentPages(const Napi::CallbackInfo& info);

  Mapping& Live(Napi::Env env);  // throws once unmapped
  void CheckSpan(Napi::Env env, uint64_t offset, uint64_t length);

  Mapping* mapping_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffer_;  // weak: the buffer may be collected and remade
};

}  // namespace uffd

// Items made on one background thread, handed to JavaScript in batches through one
// thread-safe function. The fault reader (fault_reader.h) and the fd listener (fdpass.h) both
// use it, so that both follow one set of rules:
// - Post (background thread) appends under the mutex and signals once per batch, after the
//   mutex is released, with NonBlockingCall on an unbounded queue: the background thread never
//   waits for JavaScript.
// - Deliver (JS thread) swaps the pending items out under the mutex and gives them to the
//   owner's DeliverBatch, which calls JavaScript with raw napi_call_function: node-addon-api
//   would build a Napi::Error from a failed call, and that aborts while a Worker is torn down.
// - Items nobody will receive go to Owner::Discard (which closes the fds they carry), the same
//   way whether delivery finds the owner stopped, the call into JavaScript fails, or the
//   destructor runs with items still pending.
// - The thread-safe function's finalizer deletes the owner. Node runs it before it empties its
//   own queue with env == nullptr, so CallJs then must not touch the owner: the destructor has
//   already discarded what was pending.
//
// Owner provides, and befriends this class for:
//   size_t DeliverBatch(napi_env, napi_value fn, std::vector<Item>&)  JS thread: hands items
//       to JS from the front, returns how many it handed (an item handed to a call that failed
//       counts: JS may have taken it); the rest are discarded.
//   static void Discard(Item&)                                          any thread
//   a private destructor, run by the finalizer.
#pragma once
#include <napi.h>

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace uffd {

template <typename Owner, typename Item>
class JsBatchQueue {
 public:
  // JS thread. `reserve` items are kept allocated on both sides of the swap, so that a steady
  // flow of batches no larger than that allocates nothing.
  JsBatchQueue(Owner* owner, size_t reserve) : owner_(owner) {
    pending_.reserve(reserve);
    delivering_.reserve(reserve);
  }
  ~JsBatchQueue() {
    DiscardAll(pending_);
    DiscardAll(delivering_);
  }
  JsBatchQueue(const JsBatchQueue&) = delete;
  JsBatchQueue& operator=(const JsBatchQueue&) = delete;

  // JS thread, last in the owner's constructor: from here on the finalizer owns the owner, and
  // a constructor that threw after it would free the owner a second time.
  void Open(Napi::Env env, Napi::Function fn, const char* name) {
    tsfn_ = Tsfn::New(env, fn, name, 0, 1, this, Finalize, static_cast<void*>(nullptr));
  }

  // Background thread: copies `count` items.
  void Post(const Item* items, size_t count) {
    PostWith([&](std::vector<Item>& p) { p.insert(p.end(), items, items + count); });
  }
  // Background thread.
  void Post(Item&& item) {
    PostWith([&](std::vector<Item>& p) { p.push_back(std::move(item)); });
  }

  // JS thread, once the background thread has been joined: nothing is posted any more. The
  // owner is deleted (on the JS thread) once the thread-safe function has drained.
  void Release() {
    if (released_) return;
    released_ = true;
    tsfn_.Release();
  }
  void Ref(Napi::Env env) {  // JS thread
    if (!released_) tsfn_.Ref(env);
  }
  void Unref(Napi::Env env) {  // JS thread
    if (!released_) tsfn_.Unref(env);
  }

 private:
  static void CallJs(Napi::Env env, Napi::Function fn, JsBatchQueue* self, void* unused) {
    if (env == nullptr || self == nullptr) return;  // the finalizer ran: self is gone
    self->Deliver(env, fn);
  }
  using Tsfn = Napi::TypedThreadSafeFunction<JsBatchQueue, void, &JsBatchQueue::CallJs>;

  static void Finalize(Napi::Env, void*, JsBatchQueue* self) { delete self->owner_; }

  // Background thread. The thread-safe function is called after mutex_ is released: its call
  // wakes the JS thread, and a background thread preempted while still holding mutex_ (one CPU,
  // or a busy machine) made the JS thread block on it and switch back and forth twice more per
  // batch (measured with perf stat: 6.9 -> 5.7 context switches per fault;
  // docs/performance.md).
  template <typename Fill>
  void PostWith(Fill&& fill) {
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fill(pending_);
      if (!signalled_) signalled_ = signal = true;
    }
    // A call that finds the items already taken by an earlier one delivers nothing. After
    // napi_closing (the environment is going) the function must not be called again, so
    // signalled_ stays set: what is posted from then on waits for the destructor's discard.
    if (signal) {
      napi_status status = tsfn_.NonBlockingCall();
      if (status != napi_ok && status != napi_closing) {
        std::lock_guard<std::mutex> lock(mutex_);
        signalled_ = false;
      }
    }
  }

  // JS thread.
  void Deliver(Napi::Env env, Napi::Function fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      delivering_.swap(pending_);
      signalled_ = false;
    }
    size_t handed = released_ ? 0 : owner_->DeliverBatch(env, fn, delivering_);
    for (size_t i = handed; i < delivering_.size(); i++) Owner::Discard(delivering_[i]);
    delivering_.clear();
  }

  static void DiscardAll(std::vector<Item>& items) {
    for (Item& item : items) Owner::Discard(item);
    items.clear();
  }

  Owner* owner_;
  Tsfn tsfn_;
  bool released_ = false;  // JS thread

  std::mutex mutex_;
  std::vector<Item> pending_;     // filled by the background thread, under mutex_
  std::vector<Item> delivering_;  // the JS thread's side of the swap
  bool signalled_ = false;        // under mutex_: a CallJs is queued
};

}  // namespace uffd

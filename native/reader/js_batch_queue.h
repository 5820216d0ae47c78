// Items made on one background thread, handed to JavaScript in batches. The fault reader
// (fault_reader.h) and the fd listener (fdpass.h) both use it, so that both follow one set of
// rules:
// - Post (background thread) appends under the mutex and, once per batch, after the mutex is
//   released, wakes the JS thread with uv_async_send: the background thread never waits for
//   JavaScript, and never calls into Node. (A thread-safe function did this before; its call
//   pushes onto a std::queue, which allocates, and the fault reader must not allocate: see
//   mapped_vector.h. For trivially copyable items, as the reader's, the queue itself lives in
//   MappedVector storage, so that posting never calls malloc either.)
// - Deliver (JS thread, the uv_async callback) swaps the pending items out under the mutex and
//   gives them to the owner's DeliverBatch inside a callback scope (microtasks and
//   process.nextTick run after it, as after any callback from Node), which calls JavaScript
//   with raw napi_call_function: node-addon-api would build a Napi::Error from a failed call,
//   and that aborts while a Worker is torn down. An exception the call leaves pending is
//   reported as uncaught, as a thread-safe function's would be.
// - TakePending (JS thread) lets an owner that also reads on the JS thread (the fault reader's
//   loop reading) take what is pending, to deliver it itself ahead of what it read: into the
//   same storage, so that the JS thread allocates nothing while it holds the mutex either.
// - Items nobody will receive go to Owner::Discard (which closes the fds they carry), the same
//   way whether delivery finds the queue released, the call into JavaScript fails, or the
//   destructor runs with items still pending.
// - Lifetime: Release (JS thread, after the background thread is joined: nothing posts any
//   more) drops the JavaScript references and closes the uv handle; its close callback, the last
//   thing that touches the queue, deletes the owner. The owner must Release before its
//   environment's napi_env goes (the owners do it from their env cleanup hooks), and the close
//   callback uses nothing of Node-API but the removal of an async cleanup hook: that hook holds
//   a terminated Worker's teardown until the close callback has run, since Node unloads the
//   addon afterwards and a close callback run after that would jump into unmapped code.
//
// Owner provides, and befriends this class for:
//   size_t DeliverBatch(napi_env, napi_value fn, Item* items, size_t count)  JS thread: hands
//       items to JS from the front, returns how many it handed (an item handed to a call that
//       failed counts: JS may have taken it); the rest are discarded.
//   static void Discard(Item&)                                                any thread
//   a private destructor, run by the close callback.
#pragma once
#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <iterator>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "reader/mapped_vector.h"

namespace uffd {

template <typename Owner, typename Item>
class JsBatchQueue {
 public:
  using Storage = std::conditional_t<std::is_trivially_copyable<Item>::value, MappedVector<Item>,
                                     std::vector<Item>>;

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

  // JS thread, last in the owner's constructor: from here on the close callback owns the owner,
  // and a constructor that threw after it would free the owner a second time. Returns false
  // (having opened nothing) when the loop or the handle cannot be had.
  bool Open(Napi::Env env, Napi::Function fn, const char* name) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return false;
    if (uv_async_init(loop, &async_, OnAsync) != 0) return false;
    async_.data = this;
    env_ = env;
    napi_create_reference(env, fn, 1, &fn_);
    napi_value resourceName;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resourceName);
    napi_async_init(env, nullptr, resourceName, &context_);
    napi_add_async_cleanup_hook(env, [](napi_async_cleanup_hook_handle, void*) {}, this, &cleanup_);
    opened_ = true;
    return true;
  }

  // Background thread: copies `count` items.
  void Post(const Item* items, size_t count) {
    PostWith([&](Storage& p) { Append(p, items, count); });
  }
  // Background thread.
  void Post(Item&& item) {
    PostWith([&](Storage& p) { p.push_back(std::move(item)); });
  }

  // JS thread, once the background thread has been joined: nothing is posted any more. The owner
  // is deleted (on the JS thread) by the handle's close callback. Without Open, the owner is
  // deleted now.
  void Release() {
    if (released_) return;
    released_ = true;
    if (!opened_) {
      delete owner_;
      return;
    }
    napi_delete_reference(env_, fn_);
    fn_ = nullptr;
    napi_async_destroy(env_, context_);
    context_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), OnClosed);
  }
  // JS thread: moves what is pending to the end of `out` (the owner delivers it itself, before
  // what it reads next). A delivery already signalled then finds nothing, which is harmless.
  // `out` is the same storage as the queue's, so that nothing here calls malloc under mutex_,
  // which the background thread takes (mapped_vector.h: a fork must not find it waiting).
  void TakePending(Storage& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    Append(out, pending_.data(), pending_.size());
    pending_.clear();
  }
  // JS thread, while open: the async context the queue's calls run in, for an owner that calls
  // JavaScript itself (in the same context: AsyncLocalStorage, async_hooks). Null once released.
  napi_async_context context() const { return context_; }
  void Ref() {  // JS thread
    if (opened_ && !released_) uv_ref(reinterpret_cast<uv_handle_t*>(&async_));
  }
  void Unref() {  // JS thread
    if (opened_ && !released_) uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
  }

 private:
  static void Append(MappedVector<Item>& p, const Item* items, size_t count) {
    p.append(items, count);
  }
  static void Append(std::vector<Item>& p, const Item* items, size_t count) {
    p.insert(p.end(), items, items + count);
  }

  // Background thread. uv_async_send is called after mutex_ is released: it wakes the JS thread,
  // and a background thread preempted while still holding mutex_ (one CPU, or a busy machine)
  // made the JS thread block on it and switch back and forth twice more per batch (measured
  // with perf stat: 6.9 -> 5.7 context switches per fault; docs/performance.md). Several sends
  // before the callback runs make one callback.
  template <typename Fill>
  void PostWith(Fill&& fill) {
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fill(pending_);
      if (!signalled_) signalled_ = signal = true;
    }
    if (signal) uv_async_send(&async_);
  }

  // JS thread.
  static void OnAsync(uv_async_t* handle) {
    auto* self = static_cast<JsBatchQueue*>(handle->data);
    if (!self->released_) self->Deliver();
  }

  // JS thread: the last use of the queue; the owner (and this queue, a member of it) goes.
  static void OnClosed(uv_handle_t* handle) {
    auto* self = static_cast<JsBatchQueue*>(handle->data);
    if (self->cleanup_ != nullptr) napi_remove_async_cleanup_hook(self->cleanup_);
    delete self->owner_;
  }

  // JS thread.
  void Deliver() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      delivering_.swap(pending_);
      signalled_ = false;
    }
    size_t handed = 0;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) == napi_ok) {
      handed = CallIntoJs();
      napi_close_handle_scope(env_, scope);
    }
    for (size_t i = handed; i < delivering_.size(); i++) Owner::Discard(delivering_[i]);
    delivering_.clear();
  }

  // JS thread, in a handle scope: the owner's DeliverBatch in a callback scope. 0 when JS
  // cannot be called (the environment is being torn down).
  size_t CallIntoJs() {
    napi_value fn, resource;
    napi_callback_scope callbackScope;
    if (napi_get_reference_value(env_, fn_, &fn) != napi_ok || fn == nullptr ||
        napi_create_object(env_, &resource) != napi_ok ||
        napi_open_callback_scope(env_, resource, context_, &callbackScope) != napi_ok) {
      return 0;
    }
    size_t handed = owner_->DeliverBatch(env_, fn, delivering_.data(), delivering_.size());
    bool pending = false;
    if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env_, &error) == napi_ok)
        napi_fatal_exception(env_, error);
    }
    napi_close_callback_scope(env_, callbackScope);
    return handed;
  }

  static void DiscardAll(Storage& items) {
    for (Item& item : items) Owner::Discard(item);
    items.clear();
  }

  Owner* owner_;
  uv_async_t async_{};
  napi_env env_ = nullptr;
  napi_ref fn_ = nullptr;
  napi_async_context context_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;  // holds the environment's teardown
  bool opened_ = false;                               // JS thread
  bool released_ = false;                             // JS thread

  std::mutex mutex_;
  Storage pending_;         // filled by the background thread, under mutex_
  Storage delivering_;      // the JS thread's side of the swap
  bool signalled_ = false;  // under mutex_: a callback is due
};

}  // namespace uffd

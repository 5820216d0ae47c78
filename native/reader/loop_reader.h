// A userfaultfd watched by the JS thread's own event loop: a libuv poll handle in the loop of
// the environment that made it (napi_get_uv_event_loop: a Worker has a loop of its own, so never
// uv_default_loop). When the uffd is readable and the loop is free, the owner reads it right
// there, with no hop through another thread (fault_reader.h: the reader thread then only
// watches, and reads in the JS thread's stead when that thread is busy or stopped on a fault).
//
// Lifetime: the owner calls Close() (close(), its finalizer, its env cleanup hook), or the
// environment's teardown does (an async cleanup hook, which Node waits for). Either way the
// handle is closed through libuv and this object deletes itself once libuv is done with it;
// `*slot` is cleared at Close(), so that the owner never touches it again.
#pragma once
#include <node_api.h>
#include <uv.h>

namespace uffd {

class LoopReader {
 public:
  // JS thread: what the poll handle calls when the uffd is readable (status 0) or failed.
  class Target {
   public:
    virtual ~Target() = default;
    virtual void OnReadable(napi_env env, int status) = 0;
  };

  // JS thread. A stopped, ref'd watch of `fd`; null when libuv refuses the fd (the owner then
  // leaves the reading to its thread). `*slot` is where the owner keeps the pointer.
  static LoopReader* Open(napi_env env, int fd, Target* target, LoopReader** slot);

  void Start();  // JS thread: watch for messages
  void Stop();   // JS thread: stop watching (the handle stays open)
  void Ref();    // JS thread: a watch that keeps the loop alive while started (the default)
  void Unref();  // JS thread
  // JS thread. Stops and closes the handle; idempotent. *slot is cleared here.
  void Close();

 private:
  LoopReader(napi_env env, Target* target, LoopReader** slot);
  ~LoopReader() = default;
  static void OnPoll(uv_poll_t* handle, int status, int events);                 // JS thread
  static void OnClosed(uv_handle_t* handle);                                     // JS thread
  static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* self);  // JS thread

  uv_poll_t handle_;
  napi_env env_;
  Target* target_;
  LoopReader** slot_;
  napi_async_cleanup_hook_handle teardownHook_ = nullptr;
  bool closing_ = false;  // JS thread
};

}  // namespace uffd

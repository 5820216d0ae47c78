#include "reader/loop_reader.h"

namespace uffd {

LoopReader::LoopReader(napi_env env, Target* target, LoopReader** slot)
    : env_(env), target_(target), slot_(slot) {}

LoopReader* LoopReader::Open(napi_env env, int fd, Target* target, LoopReader** slot) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return nullptr;
  auto* self = new LoopReader(env, target, slot);
  if (uv_poll_init(loop, &self->handle_, fd) != 0) {
    delete self;  // libuv keeps no trace of a handle whose init failed
    return nullptr;
  }
  self->handle_.data = self;
  // A Worker's teardown must not end with the handle open: its loop is then closed, and libuv
  // refuses to close a loop with open handles (Node aborts). Node waits for this hook.
  if (napi_add_async_cleanup_hook(env, OnEnvTeardown, self, &self->teardownHook_) != napi_ok) {
    self->teardownHook_ = nullptr;
  }
  *slot = self;
  return self;
}

void LoopReader::Start() {
  if (!closing_) uv_poll_start(&handle_, UV_READABLE, OnPoll);
}

void LoopReader::Stop() {
  if (!closing_) uv_poll_stop(&handle_);
}

void LoopReader::Ref() {
  if (!closing_) uv_ref(reinterpret_cast<uv_handle_t*>(&handle_));
}

void LoopReader::Unref() {
  if (!closing_) uv_unref(reinterpret_cast<uv_handle_t*>(&handle_));
}

void LoopReader::Close() {
  if (closing_) return;
  closing_ = true;
  if (slot_ != nullptr) *slot_ = nullptr;
  slot_ = nullptr;
  target_ = nullptr;
  // uv_close stops the watch and takes the fd out of the loop's epoll set at once, so the
  // owner may close the fd right after this.
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), OnClosed);
}

// JS thread, from the loop.
void LoopReader::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<LoopReader*>(handle->data);
  if (self->target_ != nullptr) self->target_->OnReadable(self->env_, status);
}

// JS thread: libuv is done with the handle.
void LoopReader::OnClosed(uv_handle_t* handle) {
  auto* self = static_cast<LoopReader*>(handle->data);
  // Removing the hook also tells Node that a teardown which started it is complete.
  if (self->teardownHook_ != nullptr) napi_remove_async_cleanup_hook(self->teardownHook_);
  delete self;
}

// JS thread, at environment teardown, when the owner has not closed the watch yet. A watch
// already closing finishes in OnClosed, which the teardown's loop turns still run.
void LoopReader::OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  static_cast<LoopReader*>(arg)->Close();
}

}  // namespace uffd

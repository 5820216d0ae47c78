// SCM_RIGHTS: passing a userfaultfd to another process over a Unix socket.
//
// sendFd(path, fd, payload): connect, then one sendmsg(2) of the payload with the fd attached.
// FdListener: a Unix stream socket listening at a path, and one thread polling {listen socket,
// eventfd, connections}. The thread accepts, reads SO_PEERCRED, receives bytes and fds
// (MSG_CMSG_CLOEXEC) and hands them to JavaScript as raw events through one thread-safe
// function; lib/tools/fdpass.ts does the framing and the checks. No blocking call ever runs on the
// JS thread or on a libuv thread-pool thread.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "reader/js_batch_queue.h"
#include "reader/wakeable_thread.h"

namespace uffd {

// Adds the fd-passing functions to the module's exports. JS thread only.
void InitFdPass(Napi::Env env, Napi::Object exports);

// (socketPath, fd, payload: Uint8Array, timeoutMs) -> undefined. JS thread: connects and
// sends synchronously (a local socket; the timeout bounds a full backlog or buffer).
Napi::Value SendFd(const Napi::CallbackInfo& info);

// What the listener thread reports, per connection.
struct ListenEvent {
  enum Kind { kAccept, kData, kEnd, kError } kind;
  uint32_t conn;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int err;                    // kError: errno
  std::vector<uint8_t> data;  // kData
  std::vector<int> fds;       // kData: fds received with these bytes (close-on-exec)
};

// The thread and its state. Deletes itself when its queue's uv handle has closed, after
// Stop(), so that no delivery can outlive it.
class ListenCore {
 public:
  // JS thread only. Takes ownership of listenFd.
  // maxFds: fds a connection may pass (1: one userfaultfd; CRIU passes one per task).
  ListenCore(Napi::Env env, int listenFd, size_t readSize, Napi::Function onEvents,
             uint32_t maxFds = 1);
  ListenCore(const ListenCore&) = delete;
  ListenCore& operator=(const ListenCore&) = delete;

  // JS thread. Starts the thread; throws UffdError on failure, having stopped itself.
  void Start(Napi::Env env);
  void Stop();   // JS thread: wake, join, close every fd; idempotent
  void Ref();    // JS thread
  void Unref();  // JS thread
  // JS thread. Stop reading a connection: only its hang-up is reported from now on.
  void Release(uint32_t conn);
  // JS thread. Close a connection now (after an error on it).
  void Drop(uint32_t conn);
  // JS thread. Send `data` with a duplicate of `fd` (-1: none) on the connection: a shared
  // image's memfd, handed to the client before its uffd comes back, and the answer after. A
  // failure is reported as the connection's error, and the connection closed. 0, or the errno
  // of the duplicate.
  int Send(uint32_t conn, int fd, std::vector<uint8_t> data);
  // JS thread. Closes received fds that JavaScript is done with (adopted or refused). Only fds
  // this listener handed to JS and that are still open are closed: never one twice.
  void CloseReceived(const std::vector<int>& fds);

 private:
  struct Conn {
    uint32_t id;
    int fd;
    bool reading;
    uint32_t fds;  // fds received; past maxFds_ they are closed on arrival
  };
  struct Command {
    uint32_t conn;
    bool drop;
    bool send = false;
    int fd = -1;                // Send: our duplicate of the fd to hand over (closed once sent)
    std::vector<uint8_t> data;  // Send: the message (the fd, if any, rides on its first byte)
  };
  friend class JsBatchQueue<ListenCore, ListenEvent>;
  ~ListenCore();

  void Run();                    // listener thread
  void AcceptAll();              // listener thread
  bool Receive(Conn& c);         // listener thread; false: the connection is finished
  void ApplyCommands();          // listener thread
  void PauseAccepting(int err);  // listener thread
  // JS thread: the batch as an array of event objects, passed to onEvents(events). Hands all
  // or none: none when JS cannot run (a Worker being torn down).
  size_t DeliverBatch(napi_env env, napi_value fn, ListenEvent* batch, size_t count);
  static void Discard(ListenEvent& e);  // any thread: closes the fds nobody will receive

  int listenFd_;
  size_t readSize_;
  uint32_t maxFds_;
  std::vector<uint8_t> buffer_;  // listener thread
  std::vector<Conn> conns_;      // listener thread
  uint32_t nextConn_ = 1;        // listener thread
  int spareFd_;                  // listener thread (and Stop after it): the reserved slot, or -1
  int64_t resumeAcceptAt_ = 0;   // listener thread: CLOCK_MONOTONIC ms; 0: accepting
  int backoffMs_ = 0;            // listener thread
  int acceptErrno_ = 0;  // listener thread: the accept error reported last, 0 after a success
  WakeableThread thread_;
  JsBatchQueue<ListenCore, ListenEvent> queue_;

  std::mutex mutex_;
  std::vector<Command> commands_;  // under mutex_
  // JS thread: fds handed to JS that it has not closed through CloseReceived. Stop closes them:
  // a Worker terminated while its JS held them (mid-message, or between adopting an fd and
  // closing the original) would leak them otherwise, as JS cannot run to close them.
  std::vector<int> handed_;
};

class FdListener : public Napi::ObjectWrap<FdListener> {
 public:
  static Napi::Function Init(Napi::Env env);
  // JS: new FdListener(socketPath, backlog, readSize, onEvents(events[]), mode?, maxFds?): the
  // socket file gets `mode` before listen(2); a connection passes at most maxFds fds (1).
  explicit FdListener(const Napi::CallbackInfo& info);
  ~FdListener() override;

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Drop(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value CloseReceived(const Napi::CallbackInfo& info);
  void Shutdown();  // idempotent: close(), the finalizer and the env cleanup hook end here
  static void OnEnvCleanup(void* self);

  ListenCore* core_ = nullptr;
  napi_env env_;
  bool hookInstalled_ = false;
};

}  // namespace uffd

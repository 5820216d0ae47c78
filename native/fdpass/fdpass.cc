#include "fdpass/fdpass.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fdpass/fd_message.h"
#include "uffd/args.h"
#include "uffd/errors.h"

namespace uffd {

namespace {

// A connection carries one userfaultfd. recvmsg(2) installs at most what the control buffer
// holds and the kernel closes the rest (MSG_CTRUNC), so a peer sending 16 fds a message never
// puts more than this many in our table; after a connection's first, none (no control buffer).
constexpr size_t kMaxFdsPerMessage = 1;

// After accept(2) fails (EMFILE and the like), the listening socket stays readable: polling it
// again at once would spin. Accepting pauses instead, from kFirstBackoffMs doubling to
// kMaxBackoffMs, and resumes early when one of our connections closes (an fd freed).
constexpr int kFirstBackoffMs = 10;
constexpr int kMaxBackoffMs = 1000;

// Events kept allocated on both sides of the queue's swap.
constexpr size_t kReserve = 64;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A spare fd held in reserve, so that a connection that was accepted always has a slot left for
// the userfaultfd it brings (at the RLIMIT_NOFILE, the kernel would drop it silently).
int OpenSpare() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

// UnixSocket() for the connect(2) or bind(2) named by `syscall`: throws that syscall's
// ENAMETOOLONG when the path does not fit, or socket(2)'s errno.
int UnixSocketOrThrow(Napi::Env env, const std::string& path, const char* syscall, int flags,
                      sockaddr_un* addr, socklen_t* addrLen) {
  int sock = UnixSocket(path, flags, addr, addrLen);
  if (sock == -ENAMETOOLONG) ThrowErrno(env, ENAMETOOLONG, syscall, kNoBytes, path.c_str());
  if (sock < 0) ThrowErrno(env, -sock, "socket");
  return sock;
}

// chmod(2) of the socket file bind(2) just made; 0 or an errno. The path must still be a socket
// owned by us (not something swapped in under it).
int RestrictSocketFile(const std::string& path, mode_t mode) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return errno;
  if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) return EPERM;
  return chmod(path.c_str(), mode) != 0 ? errno : 0;
}

std::string ArgPath(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) ThrowTypeError(info.Env(), "socketPath must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

}  // namespace

// ---- probing ----------------------------------------------------------------------------------

// (socketPath) -> boolean: whether something listens at the path. A non-blocking connect(2) to
// a Unix socket answers at once: ECONNREFUSED means no listener (the file is a leftover of a
// dead one), EAGAIN means a listener with a full backlog. Any other refusal (EACCES, ...) is
// reported as listening, so that a caller never unlinks a socket it could not check.
Napi::Value SocketListening(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgPath(info, 0);
  sockaddr_un addr;
  socklen_t addrLen;
  int sock = UnixSocketOrThrow(env, path, "connect", SOCK_NONBLOCK, &addr, &addrLen);
  int err = connect(sock, reinterpret_cast<sockaddr*>(&addr), addrLen) == 0 ? 0 : errno;
  close(sock);
  return Napi::Boolean::New(env, err != ECONNREFUSED && err != ENOENT);
}

// ---- sending ----------------------------------------------------------------------------------

Napi::Value SendFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgPath(info, 0);
  int fd = ArgInt(info, 1);
  if (!info[2].IsTypedArray()) ThrowTypeError(env, "payload must be a Uint8Array");
  Napi::TypedArray t = info[2].As<Napi::TypedArray>();
  const uint8_t* data = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  size_t length = t.ByteLength();
  if (length == 0) ThrowRangeError(env, "payload must not be empty (the fd travels with a byte)");
  int timeoutMs = info.Length() > 3 ? ArgInt(info, 3) : 10000;

  const char* failed;
  int sock = ConnectUnix(path, timeoutMs, &failed);
  if (sock < 0) ThrowErrno(env, -sock, failed, kNoBytes, *failed == 'c' ? path.c_str() : nullptr);
  // One sendmsg: the fd rides on the first byte.
  size_t sent = 0;
  int err = SendWithFd(sock, fd, data, length, &sent);
  close(sock);
  if (err != 0) {
    ThrowErrno(env, err == EWOULDBLOCK ? ETIMEDOUT : err, "sendmsg", static_cast<int64_t>(sent),
               path.c_str());
  }
  return env.Undefined();
}

// ---- the listener thread ------------------------------------------------------------------

ListenCore::ListenCore(Napi::Env env, int listenFd, size_t readSize, Napi::Function onEvents,
                       uint32_t maxFds)
    : listenFd_(listenFd),
      readSize_(readSize),
      maxFds_(maxFds),
      buffer_(readSize),
      spareFd_(OpenSpare()),
      queue_(this, kReserve) {
  if (thread_.initError() != 0) {
    close(listenFd_);
    if (spareFd_ >= 0) close(spareFd_);
    ThrowErrno(env, thread_.initError(), "eventfd");
  }
  if (!queue_.Open(env, onEvents, "userfaultfd-listener")) {
    close(listenFd_);
    if (spareFd_ >= 0) close(spareFd_);
    ThrowErrno(env, ENOMEM, "uv_async_init");
  }
}

void ListenCore::Start(Napi::Env env) {
  int err = thread_.Start([this] { Run(); });
  if (err == 0) return;
  Stop();  // no thread to join; the queue deletes this
  ThrowErrno(env, err, "pthread_create");
}

ListenCore::~ListenCore() {
  for (int fd : handed_) close(fd);  // empty after Stop
  for (const Conn& c : conns_) close(c.fd);
  if (listenFd_ >= 0) close(listenFd_);
  if (spareFd_ >= 0) close(spareFd_);
}

void ListenCore::Stop() {
  if (!thread_.Stop()) return;
  // The thread is gone: its fds can go now (the destructor runs later, from the queue).
  for (const Conn& c : conns_) close(c.fd);
  conns_.clear();
  close(listenFd_);
  listenFd_ = -1;
  if (spareFd_ >= 0) close(spareFd_);
  spareFd_ = -1;
  for (int fd : handed_) close(fd);
  handed_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Command& cmd : commands_)
      if (cmd.fd >= 0) close(cmd.fd);
    commands_.clear();
  }
  queue_.Release();
}

void ListenCore::Ref() { queue_.Ref(); }

void ListenCore::Unref() { queue_.Unref(); }

void ListenCore::Release(uint32_t conn) {
  if (thread_.stopped()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  commands_.push_back({conn, false});
  thread_.Wake();
}

void ListenCore::CloseReceived(const std::vector<int>& fds) {
  for (int fd : fds) {
    auto it = std::find(handed_.begin(), handed_.end(), fd);
    if (it == handed_.end()) continue;
    handed_.erase(it);
    close(fd);
  }
}

void ListenCore::Drop(uint32_t conn) {
  if (thread_.stopped()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  commands_.push_back({conn, true});
  thread_.Wake();
}

int ListenCore::Send(uint32_t conn, int fd, std::vector<uint8_t> data) {
  if (thread_.stopped()) return EBADF;
  int copy = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (fd >= 0 && copy < 0) return errno;
  std::lock_guard<std::mutex> lock(mutex_);
  commands_.push_back({conn, false, true, copy, std::move(data)});
  thread_.Wake();
  return 0;
}

// Listener thread.
void ListenCore::Run() {
  std::vector<pollfd> fds;
  while (!thread_.stopping()) {
    fds.clear();
    fds.push_back({thread_.wakeFd(), POLLIN, 0});
    // While accepting is paused the listening socket is left out (poll skips a negative fd).
    fds.push_back({resumeAcceptAt_ == 0 ? listenFd_ : -1, POLLIN, 0});
    // A released connection is watched for its hang-up only.
    for (const Conn& c : conns_)
      fds.push_back({c.fd, static_cast<short>(c.reading ? POLLIN : POLLRDHUP), 0});
    int timeout = resumeAcceptAt_ == 0
                      ? -1
                      : static_cast<int>(std::max<int64_t>(0, resumeAcceptAt_ - NowMs()));
    int n = poll(fds.data(), fds.size(), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      ListenEvent e{ListenEvent::kError, 0, 0, 0, 0, errno, {}, {}};
      queue_.Post(std::move(e));
      return;
    }
    if (fds[0].revents != 0) {
      thread_.Drain();
      if (thread_.stopping()) return;
      ApplyCommands();
      continue;  // the set of connections may have changed
    }
    // Connections first (fds[2..] match conns_ as it was when polled), then new ones.
    std::vector<Conn> keep;
    keep.reserve(conns_.size());
    bool freed = false;
    for (size_t i = 0; i < conns_.size(); i++) {
      Conn& c = conns_[i];
      short re = fds[i + 2].revents;
      bool alive = true;
      if (re != 0) {
        if (c.reading && (re & (POLLIN | POLLHUP | POLLERR))) {
          alive = Receive(c);
        } else if (!c.reading && (re & (POLLRDHUP | POLLHUP | POLLERR))) {
          queue_.Post({ListenEvent::kEnd, c.id, 0, 0, 0, 0, {}, {}});
          alive = false;
        }
      }
      if (alive) {
        keep.push_back(c);
      } else {
        close(c.fd);
        freed = true;
      }
    }
    conns_.swap(keep);
    if (resumeAcceptAt_ != 0 && (freed || NowMs() >= resumeAcceptAt_)) {
      resumeAcceptAt_ = 0;
      AcceptAll();
    } else if (fds[1].revents & POLLIN) {
      AcceptAll();
    }
  }
}

// Listener thread.
void ListenCore::AcceptAll() {
  for (;;) {
    // No slot in reserve for a new connection's userfaultfd: wait for one, as for EMFILE.
    if (spareFd_ < 0 && (spareFd_ = OpenSpare()) < 0) {
      PauseAccepting(errno);
      return;
    }
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) PauseAccepting(errno);
      return;
    }
    acceptErrno_ = 0;
    backoffMs_ = 0;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) cred = ucred{0, 0, 0};
    uint32_t id = nextConn_++;
    if (id == 0) id = nextConn_++;
    conns_.push_back({id, fd, true, 0});
    queue_.Post({ListenEvent::kAccept, id, cred.pid, cred.uid, cred.gid, 0, {}, {}});
  }
}

// Listener thread. EMFILE, ENFILE, ENOBUFS… persist while the listening socket stays readable:
// stop polling it for a while, and report the error once, not once per retry.
void ListenCore::PauseAccepting(int err) {
  backoffMs_ = backoffMs_ == 0 ? kFirstBackoffMs : std::min(backoffMs_ * 2, kMaxBackoffMs);
  resumeAcceptAt_ = NowMs() + backoffMs_;
  if (err == acceptErrno_) return;
  acceptErrno_ = err;
  queue_.Post({ListenEvent::kError, 0, 0, 0, 0, err, {}, {}});
}

// Listener thread. One recvmsg(2): bytes and the fds that came with them.
bool ListenCore::Receive(Conn& c) {
  iovec iov{buffer_.data(), buffer_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Once a connection has its fds, no control buffer: the kernel then drops any further fds
  // without ever installing them in our table (MSG_CTRUNC).
  bool wantsFd = c.fds < maxFds_;
  if (wantsFd) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  // The reserve slot is for this connection's userfaultfd: free it for the receive.
  bool reserved = wantsFd && spareFd_ >= 0;
  if (reserved) {
    close(spareFd_);
    spareFd_ = -1;
  }
  ssize_t n = recvmsg(c.fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  int err = errno;
  if (reserved) spareFd_ = OpenSpare();  // failing, the next accept waits (AcceptAll)
  errno = err;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
    queue_.Post({ListenEvent::kError, c.id, 0, 0, 0, errno, {}, {}});
    return false;
  }
  ListenEvent e{ListenEvent::kData, c.id, 0, 0, 0, 0, {}, {}};
  // maxFds userfaultfds a connection: the rest are closed, never leaving this thread.
  c.fds += static_cast<uint32_t>(TakeFds(msg, maxFds_ - c.fds, &e.fds));
  if (wantsFd && e.fds.empty() && (msg.msg_flags & MSG_CTRUNC)) {
    // An fd came but none could be installed (EMFILE): say so, not "no fd".
    queue_.Post({ListenEvent::kError, c.id, 0, 0, 0, EMFILE, {}, {}});
    return false;
  }
  if (n == 0 && e.fds.empty()) {
    queue_.Post({ListenEvent::kEnd, c.id, 0, 0, 0, 0, {}, {}});
    return false;
  }
  e.data.assign(buffer_.data(), buffer_.data() + n);
  queue_.Post(std::move(e));
  return true;
}

// Listener thread.
void ListenCore::ApplyCommands() {
  std::vector<Command> commands;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commands.swap(commands_);
  }
  for (const Command& cmd : commands) {
    for (size_t i = 0; i < conns_.size(); i++) {
      if (conns_[i].id != cmd.conn) continue;
      if (cmd.send) {
        // A fresh connection's buffer takes this small message whole, so the non-blocking send
        // does not stop half-way; if it fails all the same, the connection ends with the error.
        size_t sent = 0;
        int err = SendWithFd(conns_[i].fd, cmd.fd, cmd.data.data(), cmd.data.size(), &sent);
        if (err == 0) break;
        queue_.Post({ListenEvent::kError, cmd.conn, 0, 0, 0, err, {}, {}});
        close(conns_[i].fd);
        conns_.erase(conns_.begin() + static_cast<long>(i));
      } else if (cmd.drop) {
        close(conns_[i].fd);
        if (resumeAcceptAt_ != 0)
          resumeAcceptAt_ = std::min(resumeAcceptAt_, NowMs());  // an fd freed
        conns_.erase(conns_.begin() + static_cast<long>(i));
      } else {
        conns_[i].reading = false;
      }
      break;
    }
    if (cmd.fd >= 0) close(cmd.fd);
  }
}

namespace {

// JS thread. Raw napi, each status checked: while a Worker is torn down JS cannot run, napi
// calls that need it fail, and node-addon-api would build a Napi::Error from the failure, which
// aborts. Returns false on the first failure.
bool SetNumber(napi_env env, napi_value o, const char* key, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok &&
         napi_set_named_property(env, o, key, n) == napi_ok;
}

bool SetString(napi_env env, napi_value o, const char* key, const char* v) {
  napi_value s;
  return napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s) == napi_ok &&
         napi_set_named_property(env, o, key, s) == napi_ok;
}

// JS thread: {type, conn, ...} as lib/base/native.ts NativeListenEvent declares it, or null.
napi_value EventToJs(napi_env env, const ListenEvent& e) {
  static const char* kKinds[] = {"accept", "data", "end", "error"};
  napi_value o;
  if (napi_create_object(env, &o) != napi_ok || !SetString(env, o, "type", kKinds[e.kind]) ||
      !SetNumber(env, o, "conn", e.conn))
    return nullptr;
  bool ok = true;
  if (e.kind == ListenEvent::kAccept) {
    ok = SetNumber(env, o, "pid", e.pid) && SetNumber(env, o, "uid", e.uid) &&
         SetNumber(env, o, "gid", e.gid);
  } else if (e.kind == ListenEvent::kData) {
    napi_value data;
    napi_value fds;
    ok = napi_create_buffer_copy(env, e.data.size(), e.data.data(), nullptr, &data) == napi_ok &&
         napi_set_named_property(env, o, "data", data) == napi_ok &&
         napi_create_array_with_length(env, e.fds.size(), &fds) == napi_ok &&
         napi_set_named_property(env, o, "fds", fds) == napi_ok;
    for (size_t k = 0; ok && k < e.fds.size(); k++) {
      napi_value fd;
      ok = napi_create_int32(env, e.fds[k], &fd) == napi_ok &&
           napi_set_element(env, fds, static_cast<uint32_t>(k), fd) == napi_ok;
    }
  } else if (e.kind == ListenEvent::kError) {
    ok = SetNumber(env, o, "errno", e.err) && SetString(env, o, "code", ErrnoCode(e.err));
  }
  return ok ? o : nullptr;
}

}  // namespace

// JS thread. Once the array is built the call is made, and the fds in it are in handed_ until
// JS closes them through CloseReceived or Stop does, whether the call succeeds or not (it may
// have taken some before it failed).
size_t ListenCore::DeliverBatch(napi_env env, napi_value fn, ListenEvent* batch, size_t count) {
  napi_value arr;
  if (napi_create_array_with_length(env, count, &arr) != napi_ok) return 0;
  for (size_t i = 0; i < count; i++) {
    napi_value o = EventToJs(env, batch[i]);
    if (o == nullptr || napi_set_element(env, arr, static_cast<uint32_t>(i), o) != napi_ok)
      return 0;
  }
  for (size_t i = 0; i < count; i++)
    handed_.insert(handed_.end(), batch[i].fds.begin(), batch[i].fds.end());
  napi_value undefined;
  napi_value result;
  napi_get_undefined(env, &undefined);
  // A failure (JS cannot run, or lib/ threw, which it never does) is left to Node to report.
  napi_call_function(env, undefined, fn, 1, &arr, &result);
  return count;
}

void ListenCore::Discard(ListenEvent& e) {
  for (int fd : e.fds) close(fd);
  e.fds.clear();
}

// ---- the JS object ----------------------------------------------------------------------------

Napi::Function FdListener::Init(Napi::Env env) {
  return DefineClass(env, "FdListener",
                     {
                         InstanceMethod<&FdListener::Close>("close"),
                         InstanceMethod<&FdListener::Ref>("ref"),
                         InstanceMethod<&FdListener::Unref>("unref"),
                         InstanceMethod<&FdListener::Release>("release"),
                         InstanceMethod<&FdListener::Drop>("drop"),
                         InstanceMethod<&FdListener::Send>("send"),
                         InstanceMethod<&FdListener::CloseReceived>("closeReceived"),
                     });
}

FdListener::FdListener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdListener>(info) {
  Napi::Env env = info.Env();
  std::string path = ArgPath(info, 0);
  int backlog = ArgInt(info, 1);
  int readSize = ArgInt(info, 2);
  if (readSize <= 0) ThrowRangeError(env, "readSize must be > 0");
  if (!info[3].IsFunction()) ThrowTypeError(env, "onEvents must be a function");
  int maxFds = info.Length() > 5 && !info[5].IsUndefined() ? ArgInt(info, 5) : 1;
  if (maxFds < 1) ThrowRangeError(env, "maxFds must be >= 1");
  sockaddr_un addr;
  socklen_t addrLen;
  int fd = UnixSocketOrThrow(env, path, "bind", SOCK_NONBLOCK, &addr, &addrLen);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), addrLen) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bind", kNoBytes, path.c_str());
  }
  // The file's mode is set before listen(2): until then a connect(2) is refused, so no peer
  // gets in through the wider mode bind(2) gave it (0777 & ~umask).
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    int err = RestrictSocketFile(path, static_cast<mode_t>(ArgInt(info, 4)));
    if (err != 0) {
      close(fd);
      unlink(path.c_str());
      ThrowErrno(env, err, "chmod", kNoBytes, path.c_str());
    }
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    unlink(path.c_str());
    ThrowErrno(env, err, "listen", kNoBytes, path.c_str());
  }
  core_ = new ListenCore(env, fd, static_cast<size_t>(readSize), info[3].As<Napi::Function>(),
                         static_cast<uint32_t>(maxFds));
  ListenCore* core = core_;
  core_ = nullptr;
  core->Start(env);  // on failure it has stopped itself (and is deleted by its queue)
  core_ = core;
  env_ = env;
  hookInstalled_ = napi_add_env_cleanup_hook(env, OnEnvCleanup, this) == napi_ok;
}

FdListener::~FdListener() {
  if (hookInstalled_) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  Shutdown();
}

void FdListener::OnEnvCleanup(void* arg) {
  auto* self = static_cast<FdListener*>(arg);
  self->hookInstalled_ = false;
  self->Shutdown();
}

void FdListener::Shutdown() {
  if (core_ != nullptr) {
    core_->Stop();
    core_ = nullptr;
  }
}

Napi::Value FdListener::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

Napi::Value FdListener::Ref(const Napi::CallbackInfo& info) {
  if (core_ != nullptr) core_->Ref();
  return info.Env().Undefined();
}

Napi::Value FdListener::Unref(const Napi::CallbackInfo& info) {
  if (core_ != nullptr) core_->Unref();
  return info.Env().Undefined();
}

Napi::Value FdListener::Release(const Napi::CallbackInfo& info) {
  uint32_t conn = static_cast<uint32_t>(ArgInt(info, 0));
  if (core_ != nullptr) core_->Release(conn);
  return info.Env().Undefined();
}

Napi::Value FdListener::Drop(const Napi::CallbackInfo& info) {
  uint32_t conn = static_cast<uint32_t>(ArgInt(info, 0));
  if (core_ != nullptr) core_->Drop(conn);
  return info.Env().Undefined();
}

// (conn, fd, data: Uint8Array) -> undefined.
Napi::Value FdListener::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t conn = static_cast<uint32_t>(ArgInt(info, 0));
  int fd = ArgInt(info, 1);
  if (!info[2].IsTypedArray()) ThrowTypeError(env, "data must be a Uint8Array");
  const uint8_t* data;
  size_t length;
  ViewBytes(info[2], &data, &length);
  if (length == 0) ThrowRangeError(env, "data must not be empty (the fd travels with a byte)");
  if (core_ == nullptr) return env.Undefined();
  int err = core_->Send(conn, fd, std::vector<uint8_t>(data, data + length));
  if (err != 0) ThrowErrno(env, err, "dup");
  return env.Undefined();
}

// (fds: number[]) -> undefined.
Napi::Value FdListener::CloseReceived(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowTypeError(env, "fds must be an array");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<int> fds;
  fds.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) ThrowTypeError(env, "fds must be numbers");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  if (core_ != nullptr) core_->CloseReceived(fds);
  return env.Undefined();
}

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFd", Napi::Function::New(env, SendFd, "sendFd"));
  exports.Set("socketListening", Napi::Function::New(env, SocketListening, "socketListening"));
  exports.Set("FdListener", FdListener::Init(env));
}

}  // namespace uffd

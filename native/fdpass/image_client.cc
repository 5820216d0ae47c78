#include "fdpass/image_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "fdpass/fd_message.h"
#include "uffd/args.h"
#include "uffd/errors.h"

namespace uffd {

namespace {

constexpr size_t kHeader = 8;  // "\0UFD", then the payload's length (u32, little-endian)

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// (pathOrSock, timeoutMs, maxPayload) -> Promise<{ sock, fd, data }>: connects (or takes the
// connected socket given), then reads one framed message and the fd that came with it (fd -1:
// none came). A socket given stays the caller's. Rejects with a UffdError: connect's,
// recvmsg's, ETIMEDOUT when no whole message came in time, ECONNRESET when the listener hung up
// first, EMSGSIZE for a payload over maxPayload.
class ReceiveWorker : public Napi::AsyncWorker {
 public:
  ReceiveWorker(Napi::Env env, std::string path, int sock, int timeoutMs, size_t maxPayload)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        timeoutMs_(timeoutMs),
        maxPayload_(maxPayload),
        sock_(sock),
        ownSock_(sock < 0) {}
  ~ReceiveWorker() override {
    // Never handed to JavaScript (an error, or the environment went away first).
    if (sock_ >= 0 && ownSock_) close(sock_);
    if (fd_ >= 0) close(fd_);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  // Thread pool.
  void Execute() override {
    if (ownSock_) sock_ = ConnectUnix(path_, timeoutMs_, &failed_);
    if (sock_ < 0) {
      err_ = -sock_;
      return;
    }
    int64_t deadline = NowMs() + timeoutMs_;
    size_t want = kHeader;
    while (data_.size() < want) {
      int left = static_cast<int>(std::max<int64_t>(0, deadline - NowMs()));
      pollfd p{sock_, POLLIN, 0};
      int n = poll(&p, 1, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Fail(n == 0 ? ETIMEDOUT : errno, "poll");
      uint8_t buf[4096];
      iovec iov{buf, std::min(sizeof buf, want - data_.size())};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t got = recvmsg(sock_, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got < 0) return Fail(errno, "recvmsg");
      TakeOneFd(msg, fd_ < 0, &fd_);  // one fd a message
      if (got == 0) return Fail(ECONNRESET, "recvmsg");
      data_.insert(data_.end(), buf, buf + got);
      if (want == kHeader && data_.size() == kHeader) {
        if (data_[0] != 0 || data_[1] != 'U' || data_[2] != 'F' || data_[3] != 'D')
          return Fail(EPROTO, "recvmsg");
        uint32_t length;
        memcpy(&length, &data_[4], sizeof length);  // little-endian hosts only (x86-64, arm64)
        if (length > maxPayload_) return Fail(EMSGSIZE, "recvmsg");
        want = kHeader + length;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(
          UffdError(env, err_, failed_, kNoBytes, path_.empty() ? nullptr : path_.c_str()).Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("sock", Napi::Number::New(env, sock_));
    r.Set("fd", Napi::Number::New(env, fd_));
    r.Set("data", Napi::Buffer<uint8_t>::Copy(env, data_.data() + kHeader, data_.size() - kHeader));
    ownSock_ = false;  // JavaScript's now
    fd_ = -1;
    deferred_.Resolve(r);
  }

 private:
  void Fail(int err, const char* call) {
    err_ = err;
    failed_ = call;
  }

  Napi::Promise::Deferred deferred_;
  std::string path_;
  int timeoutMs_;
  size_t maxPayload_;
  int sock_, fd_ = -1, err_ = 0;
  bool ownSock_;
  const char* failed_ = "connect";
  std::vector<uint8_t> data_;
};

Napi::Value ReceiveFdMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() && !info[0].IsNumber())
    ThrowTypeError(env, "socketPath must be a string, or a socket a number");
  int timeoutMs = ArgInt(info, 1), maxPayload = ArgInt(info, 2);
  if (timeoutMs <= 0 || maxPayload <= 0)
    ThrowRangeError(env, "timeoutMs and maxPayload must be > 0");
  std::string path = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  int sock = info[0].IsNumber() ? ArgInt(info, 0) : -1;
  if (info[0].IsNumber() && sock < 0) ThrowRangeError(env, "sock must be >= 0");
  auto* w = new ReceiveWorker(env, path, sock, timeoutMs, static_cast<size_t>(maxPayload));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// (sock, fd, data: Uint8Array) -> undefined: the message with the fd on a connected socket.
Napi::Value SendOnSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt(info, 0), fd = ArgInt(info, 1);
  if (!info[2].IsTypedArray()) ThrowTypeError(env, "data must be a Uint8Array");
  const uint8_t* data;
  size_t length;
  ViewBytes(info[2], &data, &length);
  if (length == 0) ThrowRangeError(env, "data must not be empty (the fd travels with a byte)");
  size_t sent = 0;
  int err = SendWithFd(sock, fd, data, length, &sent);
  if (err != 0)
    ThrowErrno(env, err == EWOULDBLOCK ? ETIMEDOUT : err, "sendmsg", static_cast<int64_t>(sent));
  return env.Undefined();
}

}  // namespace

void InitImageClient(Napi::Env env, Napi::Object exports) {
  exports.Set("receiveFdMessage", Napi::Function::New(env, ReceiveFdMessage, "receiveFdMessage"));
  exports.Set("sendOnSocket", Napi::Function::New(env, SendOnSocket, "sendOnSocket"));
}

}  // namespace uffd

#include "fdpass/fd_message.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace uffd {

int UnixSocket(const std::string& path, int flags, sockaddr_un* addr, socklen_t* len) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) return -ENAMETOOLONG;
  memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  return sock >= 0 ? sock : -errno;
}

int SendWithFd(int sock, int fd, const uint8_t* data, size_t length, size_t* sent) {
  *sent = 0;
  bool fdSent = false;
  while (*sent < length) {
    iovec iov{const_cast<uint8_t*>(data + *sent), length - *sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (!fdSent && fd >= 0) {
      memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    fdSent = true;
    *sent += static_cast<size_t>(n);
  }
  return 0;
}

int ConnectUnix(const std::string& path, int sendTimeoutMs, const char** failed) {
  *failed = "connect";
  sockaddr_un addr;
  socklen_t len;
  int sock = UnixSocket(path, 0, &addr, &len);
  if (sock < 0) {
    if (sock != -ENAMETOOLONG) *failed = "socket";
    return sock;
  }
  timeval tv{sendTimeoutMs / 1000, (sendTimeoutMs % 1000) * 1000};
  setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(sock);
    return -err;
  }
  return sock;
}

size_t TakeFds(msghdr& msg, size_t room, std::vector<int>* out) {
  size_t took = 0;
  for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; k++) {
      int got;
      memcpy(&got, CMSG_DATA(h) + k * sizeof(int), sizeof got);
      if (took < room) {
        out->push_back(got);
        took++;
      } else {
        close(got);  // never leaves this thread
      }
    }
  }
  return took;
}

bool TakeOneFd(msghdr& msg, bool keep, int* fd) {
  std::vector<int> got;
  if (TakeFds(msg, keep ? 1 : 0, &got) == 0) return false;
  *fd = got[0];
  return true;
}

}  // namespace uffd

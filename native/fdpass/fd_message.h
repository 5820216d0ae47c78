// One message with a file descriptor on a Unix stream socket, both ways: what sendUffd, the
// listener's image handoff and the image client (image_client.h) send and receive. Any thread.
#pragma once
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace uffd {

// A Unix stream socket (close-on-exec, plus `flags`) and the address of `path` in *addr, or
// -ENAMETOOLONG when the path does not fit, or socket(2)'s -errno.
int UnixSocket(const std::string& path, int flags, sockaddr_un* addr, socklen_t* len);

// sendmsg(2) of `data` with `fd` (unless -1) on its first byte (SCM_RIGHTS); a stream socket may
// take less than all, and the rest follows without the fd. 0, or an errno (*sent: bytes sent before
// it). MSG_NOSIGNAL: a peer gone is EPIPE, not a signal.
int SendWithFd(int sock, int fd, const uint8_t* data, size_t length, size_t* sent);

// The fds a received message carries (SCM_RIGHTS): the first goes to *fd when `keep`, every
// other one is closed (one fd a message, or a connection). True when *fd was set.
bool TakeOneFd(msghdr& msg, bool keep, int* fd);

// The same for up to `room` fds: those go to *out, in order, every other one is closed. Returns
// how many went to *out.
size_t TakeFds(msghdr& msg, size_t room, std::vector<int>* out);

// A connected SOCK_STREAM socket to the Unix socket at `path` (close-on-exec), or -errno with
// *failed naming the call ("socket" or "connect"; a path too long is connect's ENAMETOOLONG).
// `sendTimeoutMs` bounds connect(2) and later sends on a full backlog or buffer.
int ConnectUnix(const std::string& path, int sendTimeoutMs, const char** failed);

}  // namespace uffd

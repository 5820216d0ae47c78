// The C baseline of bench/kvm-restore.js: a page-fault handler in the shape of Firecracker's
// example handlers (src/firecracker/examples/uffd: uffd_utils.rs and on_demand_handler.rs), in C.
// Built by the benchmark with `cc -O2`.
//
//   fc-handler SOCKET MEMORY-FILE
//
// Binds SOCKET, accepts one VM, receives its uffd and JSON mappings (base_host_virt_addr, size,
// offset, page_size) in one message, maps the memory file read-only (MAP_PRIVATE), then loops:
// poll the uffd and the connection; read every queued uffd_msg, one read(2) each (the
// userfaultfd crate's read_event); answer each fault with one UFFDIO_COPY of one page from the
// mapping (waking the vCPU), or UFFDIO_ZEROPAGE for a page the balloon removed. EEXIST (another
// vCPU's fault on a page already copied) needs nothing; EAGAIN (a REMOVE event queued) defers the
// fault to after the next read. Exits when the VM hangs up, printing one JSON line of counters.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MAPPINGS 8
#define MAX_EVENTS 1024

struct mapping {
  uint64_t base, size, offset, pageSize;
};

static struct mapping maps[MAX_MAPPINGS];
static int nmaps;
static const uint8_t* file;
static uint8_t* removed;  // per page of the whole guest memory (mapping order)
static long faults, copies, zeropages, eexist, eagain, removes;

static void die(const char* what) {
  fprintf(stderr, "fc-handler: %s: %s\n", what, strerror(errno));
  exit(1);
}

// The few fields of Firecracker's body this handler needs; not a JSON parser.
static uint64_t field(const char* obj, const char* name) {
  char key[32];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char* at = strstr(obj, key);
  return at ? strtoull(at + strlen(key), NULL, 10) : 0;
}

static void parse_mappings(char* body) {
  for (char* obj = strchr(body, '{'); obj && nmaps < MAX_MAPPINGS; obj = strchr(obj + 1, '{')) {
    char* end = strchr(obj, '}');
    if (end == NULL) break;
    *end = 0;
    struct mapping* m = &maps[nmaps++];
    m->base = field(obj, "base_host_virt_addr");
    m->size = field(obj, "size");
    m->offset = field(obj, "offset");
    m->pageSize = field(obj, "page_size");
    *end = '}';
  }
}

static int receive(int conn, int* uffd) {
  char body[4096];
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {body, sizeof body - 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return -1;
  body[n] = 0;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS) return -1;
  memcpy(uffd, CMSG_DATA(c), sizeof(int));
  parse_mappings(body);
  return nmaps > 0 ? 0 : -1;
}

// Index of the page holding `addr` across all mappings, and its mapping.
static long page_index(uint64_t addr, const struct mapping** which) {
  long before = 0;
  for (int i = 0; i < nmaps; i++) {
    const struct mapping* m = &maps[i];
    if (addr >= m->base && addr < m->base + m->size) {
      *which = m;
      return before + (long)((addr - m->base) / m->pageSize);
    }
    before += (long)(m->size / m->pageSize);
  }
  return -1;
}

// One fault: 1 when answered (or nothing to do), 0 when it must wait for the next read (EAGAIN).
static int serve_fault(int uffd, uint64_t addr) {
  const struct mapping* m;
  long page = page_index(addr, &m);
  if (page < 0) {
    fprintf(stderr, "fc-handler: a fault at 0x%llx is outside the mappings\n", (unsigned long long)addr);
    exit(1);
  }
  uint64_t dst = addr & ~(m->pageSize - 1);
  int rc;
  if (removed[page]) {
    struct uffdio_zeropage z = {.range = {dst, m->pageSize}};
    rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
    if (rc == 0) zeropages++;
  } else {
    struct uffdio_copy c = {.dst = dst, .src = (uintptr_t)(file + m->offset + (dst - m->base)), .len = m->pageSize};
    rc = ioctl(uffd, UFFDIO_COPY, &c);
    if (rc == 0) copies++;
  }
  if (rc == 0) return 1;
  if (errno == EEXIST) {
    eexist++;
    return 1;
  }
  if (errno == EAGAIN) {
    eagain++;
    return 0;
  }
  die("UFFDIO_COPY");
  return 0;
}

static void mark_removed(uint64_t start, uint64_t end) {
  removes++;
  for (uint64_t a = start; a < end;) {
    const struct mapping* m;
    long page = page_index(a, &m);
    if (page < 0) return;
    removed[page] = 1;
    a += m->pageSize;
  }
}

// Reads every queued event, then answers them in order; repeats while faults were deferred.
static void handle_events(int uffd) {
  static uint64_t deferred[MAX_EVENTS];
  static struct uffd_msg events[MAX_EVENTS];
  int ndeferred = 0;
  for (;;) {
    int n = 0;
    while (n < MAX_EVENTS && read(uffd, &events[n], sizeof events[n]) == (ssize_t)sizeof events[n]) n++;
    if (n == 0 && errno != EAGAIN) die("read uffd");
    uint64_t again[MAX_EVENTS];
    int nagain = 0;
    for (int i = 0; i < ndeferred; i++)
      if (!serve_fault(uffd, deferred[i])) again[nagain++] = deferred[i];
    for (int i = 0; i < n; i++) {
      if (events[i].event == UFFD_EVENT_PAGEFAULT) {
        faults++;
        uint64_t addr = events[i].arg.pagefault.address;
        if (nagain < MAX_EVENTS && !serve_fault(uffd, addr)) again[nagain++] = addr;
      } else if (events[i].event == UFFD_EVENT_REMOVE) {
        mark_removed(events[i].arg.remove.start, events[i].arg.remove.end);
      }
    }
    memcpy(deferred, again, (size_t)nagain * sizeof again[0]);
    ndeferred = nagain;
    if (ndeferred == 0) return;
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fc-handler SOCKET MEMORY-FILE\n");
    return 2;
  }
  int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) die("open the memory file");
  file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (file == MAP_FAILED) die("mmap the memory file");

  int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
  unlink(argv[1]);
  if (bind(srv, (struct sockaddr*)&sa, sizeof sa) != 0 || listen(srv, 1) != 0) die("bind");
  printf("listening\n");
  fflush(stdout);
  int conn = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) die("accept");
  int uffd;
  if (receive(conn, &uffd) != 0) die("receive the uffd and mappings");
  long pages = 0;
  for (int i = 0; i < nmaps; i++) {
    if (maps[i].pageSize == 0 || maps[i].offset + maps[i].size > (uint64_t)st.st_size) {
      errno = EINVAL;
      die("a mapping");
    }
    pages += (long)(maps[i].size / maps[i].pageSize);
  }
  removed = calloc((size_t)pages, 1);

  struct pollfd pfd[2] = {{.fd = uffd, .events = POLLIN}, {.fd = conn, .events = POLLIN}};
  for (;;) {
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (pfd[0].revents & POLLIN) handle_events(uffd);
    if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      char c;
      ssize_t r = recv(conn, &c, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN)) break;  // the VM has gone
    }
  }
  printf("{\"faults\":%ld,\"copies\":%ld,\"zeropages\":%ld,\"eexist\":%ld,\"eagain\":%ld,\"removes\":%ld}\n", faults, copies,
         zeropages, eexist, eagain, removes);
  unlink(argv[1]);
  return 0;
}

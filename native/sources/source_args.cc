#include "sources/source_args.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "uffd/args.h"
#include "uffd/errors.h"

namespace uffd {

std::unique_ptr<PageSource> FileSourceFromJs(Napi::Env env, SourceKind kind, Napi::Value value,
                                             uint64_t offset, FileMode mode, int* spare,
                                             uint64_t window) {
  int fd;
  std::string path;
  if (kind == SourceKind::kFd) {
    if (!value.IsNumber()) ThrowTypeError(env, "fd must be a number");
    fd = fcntl(value.As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) ThrowErrno(env, errno, "dup");
  } else {
    if (!value.IsString()) ThrowTypeError(env, "path must be a string");
    path = value.As<Napi::String>().Utf8Value();
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait on the JS thread for
    // a writer, forever; what is not a file is refused by MakeFileSource.
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) ThrowErrno(env, errno, "open", kNoBytes, path.c_str());
  }
  int second = spare != nullptr ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  const char* failed = "mmap";
  std::unique_ptr<PageSource> source = MakeFileSource(fd, offset, mode, &failed, window);
  if (!source) {
    int err = errno;
    if (second >= 0) close(second);
    std::string detail = path.empty() ? std::string("fd") : path;
    if (err == EINVAL && strcmp(failed, "open") == 0)
      detail += " is not a regular file or a block device";
    ThrowErrno(env, err, failed, kNoBytes,
               path.empty() && err != EINVAL ? nullptr : detail.c_str());
  }
  if (spare != nullptr) *spare = second;
  return source;
}

Napi::Uint32Array RunsToJs(Napi::Env env, const std::vector<PageRun>& runs) {
  Napi::Uint32Array out = Napi::Uint32Array::New(env, runs.size() * 3);
  for (size_t i = 0; i < runs.size(); i++) {
    out[i * 3] = runs[i].first;
    out[i * 3 + 1] = runs[i].count;
    out[i * 3 + 2] = runs[i].write;
  }
  return out;
}

}  // namespace uffd

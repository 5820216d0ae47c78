// Page sources made from JavaScript arguments (serve() and SharedImage): the file a path names
// or an fd points to, checked as MakeFileSource checks it, with the same errors; and recorded
// working-set runs handed back to JavaScript. JS thread only.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "sources/page_source.h"
#include "sources/working_set.h"

namespace uffd {

// Serve()'s source argument: what its `source` value is.
// kShared: a file source this uffd serves already (Serve's sourceId), never passed from JS.
enum class SourceKind : int32_t { kZero = 0, kBuffer = 1, kFd = 2, kPath = 3, kShared = 100 };

// kind kFd: `value` is an fd (duplicated); kPath: a path (opened O_NONBLOCK: a FIFO must not
// block the JS thread). `spare`, when not null, gets a second duplicate of the file's fd made
// before the source took the first (for a prefetch thread's own source), or -1 with errno set.
// window: the most one copy reads (MakeFileSource).
// Throws a UffdError naming the call that failed.
std::unique_ptr<PageSource> FileSourceFromJs(Napi::Env env, SourceKind kind, Napi::Value value,
                                             uint64_t offset, FileMode mode, int* spare,
                                             uint64_t window = ServedRanges::kMaxWindow);

// Recorded runs as JavaScript reads them: a Uint32Array of [firstPage, pageCount, write] triples.
Napi::Uint32Array RunsToJs(Napi::Env env, const std::vector<PageRun>& runs);

}  // namespace uffd

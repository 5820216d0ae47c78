/** `userfaultfd criu-lazy-pages`'s usage (lib/tools/criu-lazy-pages.ts), apart: help prints it without loading the daemon. */
export const USAGE = `usage: userfaultfd criu-lazy-pages -D <images-dir> [options]

  -D, --images-dir DIR  the checkpoint's images (criu dump -D DIR)
  -W, --work-dir DIR    where lazy-pages.socket is made (default: the images directory),
                        as for criu restore -W
  --pages-url URL       read pages-N.img over HTTP(S) instead: NAME=URL for one file (a
                        presigned URL), or a URL the file names are appended to (repeatable)
  --record FILE         record each lazy area's working set to FILE.<pid>.<area start, hex>
  --prefetch FILE       prefetch the working sets recorded so, as the restore starts
  --json                print one JSON line per task and a JSON summary on stdout

As criu lazy-pages (scripts that start it keep working):
  -d, --daemon          run in the background; return once it listens
  --pidfile FILE        write the daemon's pid to FILE once it listens
  --status-fd FD        write one NUL byte to FD once it listens, then close it
  -o, --log-file FILE   write the log to FILE (relative to the work directory), not stderr
  -v[N], --verbosity    accepted; the log has one level
`;

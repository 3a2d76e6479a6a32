// hiredis's public C API (pkg-config `hiredis`: Debian libhiredis-dev 0.14, Homebrew hiredis 1.x), exposed as the
// module `CHiredis` so that SwiftPM finds the library and its flags. Only CHiredisShims uses it: Swift calls the
// shims, whose signatures are the same for both versions (cluster.md §1.2).
#include <hiredis.h>

// Fixed C wrappers over the two parts of hiredis aeschat uses: the command encoder and the reply reader (never its
// networking: the relay's own event loop carries the bytes). The signatures here are the same whether hiredis is
// 0.14 (Debian) or 1.x (Homebrew); the differences (the encoder's return type, the reply struct's layout, the reply
// types RESP3 adds) stay inside shims.c. Readers and replies are opaque pointers; every reply handed out by
// `chiredis_reader_get_reply` is freed with `chiredis_reply_free` (only the top-level one).
// Only the AESChatCore target imports this module.

#ifndef CHIREDIS_SHIMS_H
#define CHIREDIS_SHIMS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kinds of reply, stable across hiredis versions. aeschat speaks RESP2: a reply of a kind only RESP3 has is a
/// protocol error of the reader (1.x would parse it, 0.14 would not), so CHIREDIS_REPLY_OTHER does not come up.
enum {
    CHIREDIS_REPLY_STRING = 1,
    CHIREDIS_REPLY_ARRAY = 2,
    CHIREDIS_REPLY_INTEGER = 3,
    CHIREDIS_REPLY_NIL = 4,
    CHIREDIS_REPLY_STATUS = 5,
    CHIREDIS_REPLY_ERROR = 6,
    CHIREDIS_REPLY_OTHER = 99,
};

/// The deepest arrays nest in a reply the reader accepts (the root array counts 1); deeper is a protocol error. The
/// replies aeschat expects nest 2 deep at most.
#define CHIREDIS_MAXIMUM_DEPTH 7

/// The major version of the hiredis headers this was compiled against (0 for Debian's 0.14, 1 for 1.x).
int chiredis_header_major(void);

/// Encodes one command (RESP array of bulk strings) into a buffer that hiredis allocates.
/// Returns the length, or -1 when out of memory or the encoder failed; on success `*target` is to be released with
/// `chiredis_command_free`.
long long chiredis_format_command(char *_Nullable *_Nonnull target, int argc, const char *_Nonnull const *_Nonnull argv,
                                  const size_t *_Nonnull argvlen);

/// Releases what `chiredis_format_command` allocated.
void chiredis_command_free(char *_Nullable command);

/// A new reply reader (hiredis's reply objects), or NULL when out of memory. Besides what hiredis checks, it refuses
/// as protocol errors: RESP3 replies, arrays nested deeper than CHIREDIS_MAXIMUM_DEPTH, and an array announcing more
/// elements than `maximum_reply_bytes` can hold (before hiredis allocates room for them).
void *_Nullable chiredis_reader_create(size_t maximum_reply_bytes);

/// Releases a reader and any reply it was building.
void chiredis_reader_free(void *_Nullable reader);

/// Appends bytes read from the server. Returns 0, or -1 once the reader is in error (see `chiredis_reader_error`).
int chiredis_reader_feed(void *_Nonnull reader, const char *_Nonnull bytes, size_t count);

/// Takes the next complete reply, if any: returns 0 with `*reply` set (NULL when no complete reply is buffered yet),
/// or -1 on a protocol error (see `chiredis_reader_error`).
int chiredis_reader_get_reply(void *_Nonnull reader, void *_Nullable *_Nonnull reply);

/// The reader's error text (empty when none).
const char *_Nonnull chiredis_reader_error(void *_Nonnull reader);

/// Bytes fed to the reader that it has not parsed yet (the part of a reply still incomplete, and anything after it).
size_t chiredis_reader_unparsed(void *_Nonnull reader);

/// A reply's kind (CHIREDIS_REPLY_*).
int chiredis_reply_type(const void *_Nonnull reply);
/// An integer reply's value.
long long chiredis_reply_integer(const void *_Nonnull reply);
/// A string, status or error reply's bytes (valid until the top-level reply is freed) and their count.
const char *_Nullable chiredis_reply_string(const void *_Nonnull reply, size_t *_Nonnull length);
/// An array reply's element count.
size_t chiredis_reply_element_count(const void *_Nonnull reply);
/// An array reply's element at `index` (< the count), owned by the array.
const void *_Nonnull chiredis_reply_element(const void *_Nonnull reply, size_t index);

/// Frees a top-level reply and everything in it.
void chiredis_reply_free(void *_Nullable reply);

#ifdef __cplusplus
}
#endif

#endif

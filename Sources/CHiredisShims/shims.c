#include "CHiredisShims.h"

#include <hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

// What differs between hiredis 0.14 (Debian) and 1.x (Homebrew), and how this file keeps it from Swift:
// - redisFormatCommandArgv returns int in 0.14 and long long in 1.x: widened to long long.
// - The reply object functions take the element count as int (0.14) or size_t (1.x), and 1.x adds createDouble and
//   createBool: ReaderCount and the #if below.
// - 1.x parses RESP3 (doubles, booleans, maps, sets, attributes, pushes, big numbers, verbatim strings, `_` nulls)
//   where 0.14 stops with a protocol error. aeschat speaks RESP2, so a RESP3 reply means the server is not what we
//   think: refused here as a protocol error with 0.14's wording, whichever version parses it.
// - 0.14 refuses arrays nested more than 8 deep; 1.0 to 1.4 nest without bound (and free replies recursively), 1.5
//   up to 1024. Refused here beyond CHIREDIS_MAXIMUM_DEPTH for every version.
// - Neither checks an array's announced element count against anything but INT_MAX (0.14) or 2^32 - 1 (1.x), and
//   both allocate the element table before the elements come: refused here beyond what the reply limit can hold.
// The reader and reply layouts this file reads (errstr, buf, pos, len, maxbuf, fn, privdata; type, integer, str,
// len, elements, element) have the same names and meanings in both. Allocation goes through hiredis's own
// allocator in both (1.x's hiredisAllocFns are left at their defaults).

#if HIREDIS_MAJOR >= 1
typedef size_t ReaderCount;
#else
typedef int ReaderCount;
#endif

/// A reader and what the shim's checks need: the reply limit, and why a reply was refused (hiredis reports such a
/// refusal as "Out of memory", the only failure an object function can signal).
typedef struct {
    redisReader *reader;
    size_t maximum_elements;
    char refusal[128];
} ShimReader;

static redisReplyObjectFunctions hiredis_functions;  // hiredis's own (reply objects it frees with freeReplyObject)
static redisReplyObjectFunctions checked_functions;  // the same behind the checks below
static pthread_once_t functions_once = PTHREAD_ONCE_INIT;

/// Records why the reply is refused (the first reason counts); the caller then returns NULL, which stops the reader.
static void refuse(const redisReadTask *task, const char *reason) {
    ShimReader *shim = (ShimReader *)task->privdata;
    if (shim != NULL && shim->refusal[0] == '\0') snprintf(shim->refusal, sizeof shim->refusal, "%s", reason);
}

/// Refuses a reply kind that only RESP3 has, naming its type byte as 0.14 does for bytes it does not know.
static void *refuse_resp3(const redisReadTask *task) {
    char type = '?';
    switch (task->type) {
#if HIREDIS_MAJOR >= 1
    case REDIS_REPLY_DOUBLE: type = ','; break;
    case REDIS_REPLY_BOOL: type = '#'; break;
    case REDIS_REPLY_MAP: type = '%'; break;
    case REDIS_REPLY_SET: type = '~'; break;
    case REDIS_REPLY_VERB: type = '='; break;
    case REDIS_REPLY_PUSH: type = '>'; break;
#endif
#ifdef REDIS_REPLY_ATTR
    case REDIS_REPLY_ATTR: type = '|'; break;
#endif
#ifdef REDIS_REPLY_BIGNUM
    case REDIS_REPLY_BIGNUM: type = '('; break;
#endif
    case REDIS_REPLY_NIL: type = '_'; break;
    default: break;
    }
    char reason[64];
    snprintf(reason, sizeof reason, "Protocol error, got \"%c\" as reply type byte", type);
    refuse(task, reason);
    return NULL;
}

static void *checked_create_string(const redisReadTask *task, char *bytes, size_t length) {
    if (task->type != REDIS_REPLY_STRING && task->type != REDIS_REPLY_STATUS && task->type != REDIS_REPLY_ERROR)
        return refuse_resp3(task);
    return hiredis_functions.createString(task, bytes, length);
}

static void *checked_create_array(const redisReadTask *task, ReaderCount elements) {
    if (task->type != REDIS_REPLY_ARRAY) return refuse_resp3(task);
    int depth = 1;
    for (const redisReadTask *parent = task->parent; parent != NULL; parent = parent->parent) depth += 1;
    char reason[128];
    if (depth > CHIREDIS_MAXIMUM_DEPTH) {
        snprintf(reason, sizeof reason, "Protocol error, a reply nests arrays more than %d deep",
                 CHIREDIS_MAXIMUM_DEPTH);
        refuse(task, reason);
        return NULL;
    }
    const ShimReader *shim = (const ShimReader *)task->privdata;
    if (shim != NULL && (size_t)elements > shim->maximum_elements) {
        snprintf(reason, sizeof reason, "Protocol error, an array of %zu elements is more than a reply can hold",
                 (size_t)elements);
        refuse(task, reason);
        return NULL;
    }
    return hiredis_functions.createArray(task, elements);
}

static void *checked_create_nil(const redisReadTask *task) {
    // "$-1" and "*-1" (RESP2's nulls) come with the type of the bulk string or array; RESP3's "_" as its own.
    if (task->type != REDIS_REPLY_STRING && task->type != REDIS_REPLY_ARRAY) return refuse_resp3(task);
    return hiredis_functions.createNil(task);
}

#if HIREDIS_MAJOR >= 1
static void *checked_create_double(const redisReadTask *task, double value, char *text, size_t length) {
    (void)value, (void)text, (void)length;
    return refuse_resp3(task);
}

static void *checked_create_bool(const redisReadTask *task, int value) {
    (void)value;
    return refuse_resp3(task);
}
#endif

static void load_functions(void) {
    // hiredis keeps its default functions private; a reader made without functions points at them.
    redisReader *probe = redisReaderCreate();
    if (probe == NULL || probe->fn == NULL) {
        if (probe != NULL) redisReaderFree(probe);
        return;
    }
    hiredis_functions = *probe->fn;
    redisReaderFree(probe);
    checked_functions = hiredis_functions;
    checked_functions.createString = checked_create_string;
    checked_functions.createArray = checked_create_array;
    checked_functions.createNil = checked_create_nil;
#if HIREDIS_MAJOR >= 1
    checked_functions.createDouble = checked_create_double;
    checked_functions.createBool = checked_create_bool;
#endif
}

int chiredis_header_major(void) { return HIREDIS_MAJOR; }

long long chiredis_format_command(char **target, int argc, const char *const *argv, const size_t *argvlen) {
    // 0.14 returns int, 1.x long long; both -1 on failure.
    long long length = redisFormatCommandArgv(target, argc, (const char **)argv, argvlen);
    return length < 0 ? -1 : length;
}

void chiredis_command_free(char *command) {
    if (command != NULL) redisFreeCommand(command);
}

void *chiredis_reader_create(size_t maximum_reply_bytes) {
#if HIREDIS_MAJOR >= 1
    // Only 1.x exports its allocator table. Naming it here makes a link against 0.14's library with 1.x headers (two
    // hiredis installed, and the linker found the other one first) fail at link time instead of on the first reply.
    if (hiredisAllocFns.mallocFn == NULL) return NULL;
#endif
    pthread_once(&functions_once, load_functions);
    if (checked_functions.createArray == NULL) return NULL;
    ShimReader *shim = calloc(1, sizeof *shim);
    if (shim == NULL) return NULL;
    shim->reader = redisReaderCreateWithFunctions(&checked_functions);
    if (shim->reader == NULL) {
        free(shim);
        return NULL;
    }
    // The shortest element, "+\r\n", takes 3 bytes.
    shim->maximum_elements = maximum_reply_bytes / 3;
    shim->reader->privdata = shim;
    // Keep a buffer of up to 64 KiB between reads instead of the default 16 KiB (a steady stream of messages).
    shim->reader->maxbuf = 64 * 1024;
    return shim;
}

void chiredis_reader_free(void *reader) {
    if (reader == NULL) return;
    ShimReader *shim = (ShimReader *)reader;
    redisReaderFree(shim->reader);
    free(shim);
}

int chiredis_reader_feed(void *reader, const char *bytes, size_t count) {
    return redisReaderFeed(((ShimReader *)reader)->reader, bytes, count) == REDIS_OK ? 0 : -1;
}

int chiredis_reader_get_reply(void *reader, void **reply) {
    *reply = NULL;
    return redisReaderGetReply(((ShimReader *)reader)->reader, reply) == REDIS_OK ? 0 : -1;
}

const char *chiredis_reader_error(void *reader) {
    const ShimReader *shim = (const ShimReader *)reader;
    return shim->refusal[0] != '\0' ? shim->refusal : shim->reader->errstr;
}

size_t chiredis_reader_unparsed(void *reader) {
    const redisReader *r = ((const ShimReader *)reader)->reader;
    return r->buf == NULL || r->len < r->pos ? 0 : r->len - r->pos;
}

int chiredis_reply_type(const void *reply) {
    switch (((const redisReply *)reply)->type) {
    case REDIS_REPLY_STRING: return CHIREDIS_REPLY_STRING;
    case REDIS_REPLY_ARRAY: return CHIREDIS_REPLY_ARRAY;
    case REDIS_REPLY_INTEGER: return CHIREDIS_REPLY_INTEGER;
    case REDIS_REPLY_NIL: return CHIREDIS_REPLY_NIL;
    case REDIS_REPLY_STATUS: return CHIREDIS_REPLY_STATUS;
    case REDIS_REPLY_ERROR: return CHIREDIS_REPLY_ERROR;
    default: return CHIREDIS_REPLY_OTHER;
    }
}

long long chiredis_reply_integer(const void *reply) { return ((const redisReply *)reply)->integer; }

const char *chiredis_reply_string(const void *reply, size_t *length) {
    const redisReply *r = (const redisReply *)reply;
    *length = r->str == NULL ? 0 : r->len;
    return r->str;
}

size_t chiredis_reply_element_count(const void *reply) {
    const redisReply *r = (const redisReply *)reply;
    return r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}

const void *chiredis_reply_element(const void *reply, size_t index) {
    return ((const redisReply *)reply)->element[index];
}

void chiredis_reply_free(void *reply) {
    if (reply != NULL) freeReplyObject(reply);
}

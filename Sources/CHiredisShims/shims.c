#include "CHiredisShims.h"

#include <hiredis.h>

int chiredis_header_major(void) { return HIREDIS_MAJOR; }

long long chiredis_format_command(char **target, int argc, const char *const *argv, const size_t *argvlen) {
    // 0.14 returns int, 1.x long long; both -1 on failure.
    long long length = redisFormatCommandArgv(target, argc, (const char **)argv, argvlen);
    return length < 0 ? -1 : length;
}

void chiredis_command_free(char *command) {
    if (command != NULL) redisFreeCommand(command);
}

void *chiredis_reader_create(void) {
    redisReader *reader = redisReaderCreate();
    if (reader == NULL) return NULL;
    // Keep a buffer of up to 64 KiB between reads instead of the default 16 KiB (a steady stream of messages).
    reader->maxbuf = 64 * 1024;
    return reader;
}

void chiredis_reader_free(void *reader) {
    if (reader != NULL) redisReaderFree((redisReader *)reader);
}

int chiredis_reader_feed(void *reader, const char *bytes, size_t count) {
    return redisReaderFeed((redisReader *)reader, bytes, count) == REDIS_OK ? 0 : -1;
}

int chiredis_reader_get_reply(void *reader, void **reply) {
    *reply = NULL;
    return redisReaderGetReply((redisReader *)reader, reply) == REDIS_OK ? 0 : -1;
}

const char *chiredis_reader_error(void *reader) { return ((redisReader *)reader)->errstr; }

size_t chiredis_reader_unparsed(void *reader) {
    redisReader *r = (redisReader *)reader;
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

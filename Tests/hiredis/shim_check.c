// Exercises CHiredisShims (the encoder and reply reader wrappers) against whichever hiredis headers and library it is
// compiled and linked with: Debian's 0.14 or a 1.x that scripts/check-hiredis builds. Every version must give the
// same results, since the Swift code above the shim has no version branches. Prints one line per failed check and
// a closing "N passed, N failed" line; exits 1 when any check failed.
//   clang -I Sources/CHiredisShims/include $(pkg-config --cflags hiredis) Tests/hiredis/shim_check.c
//      Sources/CHiredisShims/shims.c $(pkg-config --libs hiredis) -lpthread

#include "CHiredisShims.h"

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int condition, const char *what) {
    if (condition) {
        passed += 1;
    } else {
        failed += 1;
        printf("FAILED: %s\n", what);
    }
}

/// A reply rendered as text, to compare whole replies at once: +status, -error, :integer, $bulk (escaped), _ for
/// nil, [a, b] for arrays, ? for a kind the shim does not know.
static void render(const void *reply, char *out, size_t size) {
    size_t used = strlen(out);
    if (used + 64 >= size) return;
    char *end = out + used;
    size_t length = 0;
    const char *bytes;
    switch (chiredis_reply_type(reply)) {
    case CHIREDIS_REPLY_STATUS:
    case CHIREDIS_REPLY_ERROR:
    case CHIREDIS_REPLY_STRING:
        bytes = chiredis_reply_string(reply, &length);
        *end++ = chiredis_reply_type(reply) == CHIREDIS_REPLY_STATUS  ? '+'
                 : chiredis_reply_type(reply) == CHIREDIS_REPLY_ERROR ? '-'
                                                                      : '$';
        for (size_t i = 0; i < length && (size_t)(end - out) + 5 < size; i++) {
            unsigned char byte = (unsigned char)bytes[i];
            if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
                *end++ = (char)byte;
            } else {
                end += sprintf(end, "\\x%02x", byte);
            }
        }
        *end = '\0';
        break;
    case CHIREDIS_REPLY_INTEGER: sprintf(end, ":%lld", chiredis_reply_integer(reply)); break;
    case CHIREDIS_REPLY_NIL: strcpy(end, "_"); break;
    case CHIREDIS_REPLY_ARRAY:
        strcpy(end, "[");
        for (size_t i = 0; i < chiredis_reply_element_count(reply); i++) {
            if (i > 0) strcat(out, ", ");
            render(chiredis_reply_element(reply, i), out, size);
        }
        strcat(out, "]");
        break;
    default: strcpy(end, "?"); break;
    }
}

/// Feeds `wire` in pieces of `step` bytes and renders every complete reply, separated by " | ", or "error: ..." at
/// the first error; sets `unparsed` to the reader's count of unparsed bytes right after the last complete reply (what
/// RESPReader reads, to know how much of the reply in progress it holds).
static void parse(const char *wire, size_t count, size_t step, size_t limit, char *out, size_t size,
                  size_t *unparsed) {
    out[0] = '\0';
    void *reader = chiredis_reader_create(limit);
    if (reader == NULL) {
        snprintf(out, size, "no reader");
        return;
    }
    for (size_t offset = 0; offset < count; offset += step) {
        size_t piece = count - offset < step ? count - offset : step;
        if (chiredis_reader_feed(reader, wire + offset, piece) != 0) {
            snprintf(out, size, "error: %s", chiredis_reader_error(reader));
            break;
        }
        for (;;) {
            void *reply = NULL;
            if (chiredis_reader_get_reply(reader, &reply) != 0) {
                snprintf(out, size, "error: %s", chiredis_reader_error(reader));
                offset = count;
                break;
            }
            if (reply == NULL) break;
            if (unparsed != NULL) *unparsed = chiredis_reader_unparsed(reader);
            if (out[0] != '\0') strcat(out, " | ");
            render(reply, out, size);
            chiredis_reply_free(reply);
        }
    }
    chiredis_reader_free(reader);
}

static void expect_parse_bytes(const char *wire, size_t count, size_t limit, const char *expected, const char *what) {
    char got[4096];
    for (size_t step = 1; step <= count; step = step == 1 ? 3 : step * 4) {
        size_t unparsed = 0;
        parse(wire, count, step, limit, got, sizeof got, &unparsed);
        if (strcmp(got, expected) != 0) {
            printf("FAILED: %s (fed %zu bytes at a time)\n  expected: %s\n  got:      %s\n", what, step, expected, got);
            failed += 1;
            return;
        }
    }
    size_t unparsed = 0;
    parse(wire, count, count, limit, got, sizeof got, &unparsed);
    check(strcmp(got, expected) == 0, what);
}

static void expect_parse(const char *wire, size_t limit, const char *expected, const char *what) {
    expect_parse_bytes(wire, strlen(wire), limit, expected, what);
}

static void expect_prefix(const char *wire, size_t count, size_t limit, const char *prefix, const char *what) {
    char got[4096];
    parse(wire, count, count, limit, got, sizeof got, NULL);
    if (strncmp(got, prefix, strlen(prefix)) != 0) {
        printf("FAILED: %s\n  expected: %s...\n  got:      %s\n", what, prefix, got);
        failed += 1;
    } else {
        passed += 1;
    }
}

static void test_encoder(void) {
    const char *argv[] = {"PUBLISH", "", "a\r\n\0b"};
    const size_t lengths[] = {7, 0, 5};
    char *command = NULL;
    long long length = chiredis_format_command(&command, 3, argv, lengths);
    const char expected[] = "*3\r\n$7\r\nPUBLISH\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n";
    check(length == (long long)sizeof expected - 1, "the encoder's length counts every byte, NUL included");
    check(command != NULL && length > 0 && memcmp(command, expected, sizeof expected - 1) == 0,
          "the encoder writes an array of bulk strings, binary arguments intact");
    chiredis_command_free(command);
    chiredis_command_free(NULL);
}

static void test_reader(void) {
    const size_t limit = 1 << 20;
    expect_parse("+OK\r\n-ERR bad\r\n:-42\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n*1\r\n:7\r\n*-1\r\n*0\r\n$0\r\n\r\n",
                 limit, "+OK | -ERR bad | :-42 | $a\\x0d\\x0a | _ | [$x, [:7]] | _ | [] | $", "every RESP2 kind");
    expect_parse(":9223372036854775807\r\n:-9223372036854775808\r\n", limit,
                 ":9223372036854775807 | :-9223372036854775808", "integers at the ends of 64 bits");
    const char message[] = "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$3\r\n\x00\xff\x01\r\n";
    expect_parse_bytes(message, sizeof message - 1, limit, "[$message, $room, $\\x00\\xff\\x01]",
                       "a pub/sub message with a binary payload");
    expect_parse("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", limit, "[[[[[[[:1]]]]]]]",
                 "arrays nested 7 deep are read");

    // An incomplete reply stays buffered and counted.
    char got[256];
    size_t unparsed = 0;
    parse("+OK\r\n$10\r\nabc", 13, 13, limit, got, sizeof got, &unparsed);
    check(strcmp(got, "+OK") == 0 && unparsed == 8, "after a complete reply, the bytes behind it are counted as unparsed");

    // Refused by every version, with the same words.
    expect_parse("?what\r\n", limit, "error: Protocol error, got \"?\" as reply type byte", "a byte that is not RESP");
    expect_parse(":12x\r\n", limit, "error: Bad integer value", "a malformed integer");
    expect_parse(":99999999999999999999\r\n", limit, "error: Bad integer value", "an integer beyond 64 bits");
    expect_parse("$1x\r\n", limit, "error: Bad bulk string length", "a malformed bulk string length");
    expect_parse("*x\r\n", limit, "error: Bad multi-bulk length", "a malformed array length");
    const char *resp3[][2] = {
        {",1.5\r\n", ","}, {"#t\r\n", "#"},        {"%1\r\n+a\r\n:1\r\n", "%"}, {"~1\r\n:1\r\n", "~"},
        {"|1\r\n+a\r\n:1\r\n", "|"}, {">1\r\n:1\r\n", ">"}, {"(12345678901234567890\r\n", "("},
        {"=7\r\ntxt:abc\r\n", "="}, {"_\r\n", "_"},
    };
    for (size_t i = 0; i < sizeof resp3 / sizeof resp3[0]; i++) {
        char expected[128], what[64];
        snprintf(expected, sizeof expected, "error: Protocol error, got \"%s\" as reply type byte", resp3[i][1]);
        snprintf(what, sizeof what, "RESP3 '%s' is refused at the top", resp3[i][1]);
        expect_parse(resp3[i][0], limit, expected, what);
        char nested[64];
        snprintf(nested, sizeof nested, "*2\r\n:1\r\n%s", resp3[i][0]);
        snprintf(what, sizeof what, "RESP3 '%s' is refused inside an array", resp3[i][1]);
        expect_parse(nested, limit, expected, what);
    }
    expect_parse("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", limit,
                 "error: Protocol error, a reply nests arrays more than 7 deep", "arrays nested 8 deep are refused");

    // A million levels of nesting (4 MB): refused at level 8, before anything deep is built or freed recursively.
    size_t levels = 1000000;
    char *deep = malloc(levels * 4 + 4);
    for (size_t i = 0; i < levels; i++) memcpy(deep + i * 4, "*1\r\n", 4);
    memcpy(deep + levels * 4, ":1\r\n", 4);
    expect_prefix(deep, levels * 4 + 4, 17 << 20, "error: Protocol error, a reply nests arrays more than 7 deep",
                  "a million levels of nesting are refused without a crash");
    free(deep);

    expect_parse("*2000000000\r\n", 17 << 20,
                 "error: Protocol error, an array of 2000000000 elements is more than a reply can hold",
                 "an array announcing more elements than the reply limit holds is refused before allocation");
    expect_parse("*34\r\n", 100, "error: Protocol error, an array of 34 elements is more than a reply can hold",
                 "the element bound follows the reply limit (100 bytes hold 33 elements)");
    expect_parse("*33\r\n", 100, "", "33 elements fit in 100 bytes (the reply is incomplete, no error)");
}

int main(void) {
    printf("hiredis headers %d.%d.%d (shim reports major %d)\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
           chiredis_header_major());
    check(chiredis_header_major() == HIREDIS_MAJOR, "the shim was compiled against the same headers");
    test_encoder();
    test_reader();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

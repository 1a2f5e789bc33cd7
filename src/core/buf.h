/* Byte buffers with a hard maximum size, and string slices (pointer + length). */
#ifndef AG_BUF_H
#define AG_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A slice of bytes owned by someone else; never NUL-terminated by contract. */
struct ag_str {
    const char *p;
    size_t len;
};

#define AG_STR(lit) ((struct ag_str){(lit), sizeof(lit) - 1})
#define AG_STR_NULL ((struct ag_str){NULL, 0})

/* A slice over a NUL-terminated C string (NULL gives the empty slice). Inline: a literal's
 * length is then known at compile time. */
static inline struct ag_str ag_str_from_cstr(const char *s)
{
    return s ? (struct ag_str){s, strlen(s)} : AG_STR_NULL;
}

/* True when a and b hold the same bytes. */
static inline bool ag_str_eq(struct ag_str a, struct ag_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
/* True when a and b are equal ignoring ASCII case. Inline: header lookups call it per field. */
static inline bool ag_str_eq_nocase(struct ag_str a, struct ag_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        char x = a.p[i], y = b.p[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a'))
            return false;
    }
    return true;
}
/* True when s starts with prefix. */
bool ag_str_has_prefix(struct ag_str s, struct ag_str prefix);
/* s without leading and trailing spaces and horizontal tabs (OWS). */
struct ag_str ag_str_trim_ows(struct ag_str s);
/*
 * Splits s at the first occurrence of sep: *head gets the part before it, and the return value
 * is the part after it. When sep does not occur, *head is s and the result has p == NULL.
 */
struct ag_str ag_str_split(struct ag_str s, char sep, struct ag_str *head);

/*
 * Parses an unsigned decimal number (digits only, at most 19 of them, no sign or space) into
 * *out. Returns 0, AG_EINVAL for an empty input or one with a non-digit, AG_ERANGE for more
 * than 19 digits or a value over max.
 */
int ag_str_to_u64(struct ag_str s, uint64_t max, uint64_t *out);

/* Writes v in decimal at out (20 bytes of room; no NUL) and returns the number of digits. */
size_t ag_u64_dec(uint64_t v, char out[20]);

/* The value of one hexadecimal digit (either case), or -1 for any other byte. */
static inline int ag_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII letters to lower case; no other byte lands in 'a'..'f' */
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/*
 * A growable byte buffer. Live bytes are data[off .. off+len); consuming from the front moves
 * off, so a reader can drop what it handled without copying. The buffer never grows past max
 * bytes of capacity: growth beyond it fails with AG_ERANGE, which is how limits are enforced.
 */
struct ag_buf {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
    size_t max;
};

/* Prepares an empty buffer that will never hold more than max bytes; allocates nothing. */
void ag_buf_init(struct ag_buf *b, size_t max);
/* Frees the storage; the buffer is empty (with the same max) and may be used again. */
void ag_buf_release(struct ag_buf *b);
/* The live bytes as a slice (valid until the next call that changes the buffer). */
struct ag_str ag_buf_str(const struct ag_buf *b);
/* Pointer to the free space after the live bytes; ag_buf_reserve first. */
char *ag_buf_tail(struct ag_buf *b);
/* Free bytes after the live ones without growing. */
size_t ag_buf_space(const struct ag_buf *b);
/*
 * Ensures at least n free bytes after the live ones, moving live bytes to the front or growing
 * (doubling, capped at max). May move data: slices into the buffer are invalid afterwards.
 * Returns 0, AG_ERANGE when off+len+n cannot fit in max, AG_ENOMEM.
 */
int ag_buf_reserve(struct ag_buf *b, size_t n);
/* Marks n bytes written at ag_buf_tail() as live (n <= ag_buf_space()). */
void ag_buf_commit(struct ag_buf *b, size_t n);
/* Appends n bytes. Returns 0, AG_ERANGE, AG_ENOMEM; on failure the buffer is unchanged. */
int ag_buf_append(struct ag_buf *b, const void *data, size_t n);
/* Appends a slice; as ag_buf_append. */
int ag_buf_append_str(struct ag_buf *b, struct ag_str s);
/* Appends formatted text (no NUL kept); as ag_buf_append. */
int ag_buf_appendf(struct ag_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops n bytes from the front (n <= len). Resets off to 0 when the buffer becomes empty. */
void ag_buf_consume(struct ag_buf *b, size_t n);
/* Drops every live byte but keeps the storage. */
void ag_buf_clear(struct ag_buf *b);

#endif

/* Field lines to send: checked once, measured, and written in one pass. */
#ifndef AG_HTTP_FIELDS_H
#define AG_HTTP_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/http_parse.h"

/*
 * True when every field can be sent as it is: the name is a token and the value holds no CR,
 * LF or NUL. Fields that came out of ag_http_parse_request/response unchanged always are.
 */
bool ag_http_fields_valid(const struct ag_http_header *fields, size_t count);

/* The bytes ag_http_fields_put writes for these fields: "Name: value\r\n" each. */
size_t ag_http_fields_size(const struct ag_http_header *fields, size_t count);

/* Writes "Name: value\r\n" for each field at at, which has ag_http_fields_size bytes of room.
 * Returns the end of what it wrote. */
char *ag_http_fields_put(char *at, const struct ag_http_header *fields, size_t count);

/* Copies n bytes to at and returns at + n: the pieces of a head whose room is reserved. */
static inline char *ag_http_put(char *at, const void *bytes, size_t n)
{
    memcpy(at, bytes, n);
    return at + n;
}

#endif

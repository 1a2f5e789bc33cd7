/* Field lines to send: checked once, measured, and written in one pass. */
#include "core/http_fields.h"

#include <string.h>

#include "core/banned.h"

bool ag_http_fields_valid(const struct ag_http_header *fields, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!ag_http_is_token(fields[i].name) || !ag_http_field_value_safe(fields[i].value))
            return false;
    return true;
}

size_t ag_http_fields_size(const struct ag_http_header *fields, size_t count)
{
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += fields[i].name.len + fields[i].value.len + 4;
    return n;
}

char *ag_http_fields_put(char *at, const struct ag_http_header *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        at = ag_http_put(at, fields[i].name.p, fields[i].name.len);
        *at++ = ':';
        *at++ = ' ';
        if (fields[i].value.len)
            at = ag_http_put(at, fields[i].value.p, fields[i].value.len);
        *at++ = '\r';
        *at++ = '\n';
    }
    return at;
}

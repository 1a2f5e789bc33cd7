/* Input rules of the auth service: e-mail syntax and normalisation, names, passwords, roles. */
#ifndef AUTH_VALIDATE_H
#define AUTH_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

enum {
    AUTH_EMAIL_MAX = 254,    /* RFC 5321's path limit less the brackets */
    AUTH_NAME_MAX = 100,     /* code points */
    AUTH_PASSWORD_MIN = 10,  /* code points */
    AUTH_PASSWORD_MAX = 256, /* code points */
    AUTH_DESCRIPTION_MAX = 500,
    AUTH_PERMISSIONS_MAX = 100, /* permissions in one request */
};

/*
 * Why email is not an address we accept, as a static sentence, or NULL when it is one: ASCII
 * only (no Unicode look-alikes), at most 254 bytes, one '@', a local part of 1..64 RFC 5322
 * atext characters and single dots (not first or last), a domain of at least two dot-separated
 * labels of 1..63 letters, digits and inner hyphens, the last one not all digits.
 */
const char *auth_email_problem(const char *email);

/*
 * Writes the normalised form of a valid email (ASCII lowercase: A@x.io and a@x.io are one
 * account) to out, which has room for AUTH_EMAIL_MAX + 1 bytes; longer inputs are cut, at a
 * UTF-8 character boundary (login normalises addresses that were never validated).
 */
void auth_email_normalize(const char *email, char out[AUTH_EMAIL_MAX + 1]);

/*
 * Why name is refused, or NULL: not valid UTF-8, empty or only white space, over 100 code
 * points, holding a bidi override or isolate (U+202A..U+202E, U+2066..U+2069) or a zero-width
 * character (U+200B..U+200D, U+FEFF). A name holding a control character (C0, DEL, C1,
 * U+2028/9) gives NULL: kit_req_fields, which every body goes through, refuses it already.
 */
const char *auth_name_problem(const char *name);

/*
 * Why password is refused as a new password, or NULL: fewer than 10 or more than 256 code
 * points (or not valid UTF-8), in the common-password list (compared ignoring ASCII case), or
 * equal to email (ignoring ASCII case; email may be NULL).
 */
const char *auth_password_problem(const char *password, const char *email);

/* True when password is in the common-password list (ignoring ASCII case). */
bool auth_password_common(const char *password);

/* True when name matches ^[a-z][a-z0-9_-]{1,31}$. */
bool auth_role_name_valid(const char *name);

/* True when permission matches ^[a-z][a-z0-9_.:-]{0,63}$. */
bool auth_permission_valid(const char *permission);

/*
 * The number of code points in s, or (size_t)-1 when s is not valid UTF-8. len bytes are
 * read.
 */
size_t auth_utf8_count(const char *s, size_t len);

#endif

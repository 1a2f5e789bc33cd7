/* Input rules of the auth service: e-mail, names, passwords (with the common list), roles. */
#include "validate.h"

#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/banned.h"

/*
 * Well-known passwords of at least 10 characters (lowercase; compared ignoring ASCII case),
 * gathered by us from the usual top lists' long entries and their obvious variants.
 */
static const char *const common_passwords[] = {
    "1234567890",
    "0123456789",
    "0987654321",
    "9876543210",
    "1234567891",
    "12345678910",
    "123456789a",
    "a123456789",
    "123456789q",
    "q123456789",
    "1111111111",
    "0000000000",
    "2222222222",
    "3333333333",
    "4444444444",
    "5555555555",
    "6666666666",
    "7777777777",
    "8888888888",
    "9999999999",
    "1212121212",
    "1122334455",
    "1234512345",
    "1234554321",
    "1231231231",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5",
    "q1w2e3r4t5y6",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "zaq12wsxcde3",
    "qwertyuiop",
    "qwertyuiop123",
    "qwertyuiop1",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "qwertyqwerty",
    "qwertyuiopasdfghjkl",
    "asdfghjkl1",
    "asdfghjkl123",
    "asdfghjkl;",
    "zxcvbnm123",
    "zxcvbnm1234",
    "zxcvbnmasdf",
    "qweasdzxc123",
    "qweasdzxcv",
    "1qazxsw23edc",
    "abcdefghij",
    "abcdefghijk",
    "abcdefg123",
    "abcd123456",
    "abc1234567",
    "abcde12345",
    "abcdef1234",
    "a1b2c3d4e5",
    "a1b2c3d4e5f6",
    "aaaaaaaaaa",
    "zzzzzzzzzz",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password123456",
    "password1!",
    "password01",
    "password00",
    "password99",
    "password2020",
    "password2021",
    "password2022",
    "password2023",
    "password2024",
    "password2025",
    "password2026",
    "passwordpassword",
    "passw0rd123",
    "p@ssw0rd123",
    "p@ssword123",
    "p@$$w0rd123",
    "pa55word123",
    "mypassword",
    "mypassword1",
    "mypassword123",
    "newpassword",
    "newpassword1",
    "newpassword123",
    "changeme123",
    "changemenow",
    "changeme1234",
    "letmein123",
    "letmeinplease",
    "letmein1234",
    "welcome123",
    "welcome1234",
    "welcome2020",
    "welcome2021",
    "welcome2022",
    "welcome2023",
    "welcome2024",
    "welcome2025",
    "welcometomyworld",
    "iloveyou12",
    "iloveyou123",
    "iloveyou1234",
    "iloveyousomuch",
    "iloveyouforever",
    "iloveyoubaby",
    "iloveyou!!",
    "imissyou123",
    "football123",
    "football12",
    "football1234",
    "baseball123",
    "basketball",
    "basketball1",
    "basketball123",
    "soccer1234",
    "hockey1234",
    "volleyball",
    "volleyball1",
    "tennis1234",
    "superman123",
    "superman12",
    "batman1234",
    "spiderman1",
    "spiderman123",
    "starwars123",
    "starwars12",
    "pokemon123",
    "pokemon1234",
    "minecraft1",
    "minecraft123",
    "fortnite123",
    "playstation",
    "playstation1",
    "playstation2",
    "playstation3",
    "playstation4",
    "playstation5",
    "xboxlive123",
    "nintendo123",
    "computer123",
    "computer12",
    "internet123",
    "sunshine123",
    "sunshine12",
    "princess123",
    "princess12",
    "butterfly1",
    "butterfly123",
    "chocolate1",
    "chocolate123",
    "strawberry",
    "strawberry1",
    "blueberry1",
    "pineapple1",
    "watermelon",
    "watermelon1",
    "cheesecake",
    "cookiemonster",
    "dragonball",
    "dragonball1",
    "dragonfly1",
    "michael123",
    "michelle123",
    "jennifer123",
    "jessica123",
    "charlie123",
    "charlotte1",
    "elizabeth1",
    "alexander1",
    "christopher",
    "christopher1",
    "christina1",
    "jonathan123",
    "nicholas123",
    "benjamin123",
    "victoria123",
    "samantha123",
    "anthony123",
    "jordan2323",
    "jordan1234",
    "liverpool1",
    "liverpool123",
    "chelsea123",
    "arsenal123",
    "manchester",
    "manchester1",
    "manchesterunited",
    "barcelona1",
    "barcelona123",
    "realmadrid",
    "realmadrid1",
    "juventus123",
    "monkey1234",
    "monkeyman1",
    "dragon1234",
    "dragon12345",
    "master1234",
    "masterkey1",
    "shadow1234",
    "freedom123",
    "trustno1234",
    "whatever12",
    "whatever123",
    "secret1234",
    "secretpassword",
    "mysecret123",
    "administrator",
    "administrator1",
    "admin12345",
    "admin123456",
    "adminadmin",
    "adminadmin1",
    "administrador",
    "rootpassword",
    "root123456",
    "toortoor12",
    "guestguest",
    "default123",
    "defaultpassword",
    "test123456",
    "testtest12",
    "testpassword",
    "testing123",
    "qwerty2020",
    "qwerty2024",
    "summer2020",
    "summer2021",
    "summer2022",
    "summer2023",
    "summer2024",
    "summer2025",
    "winter2020",
    "winter2021",
    "winter2022",
    "winter2023",
    "winter2024",
    "winter2025",
    "spring2024",
    "autumn2024",
    "january2024",
    "december2024",
    "helloworld",
    "helloworld1",
    "helloworld123",
    "hello12345",
    "hello123456",
    "goodmorning",
    "goodluck123",
    "happybirthday",
    "happy12345",
    "lovelove12",
    "loveme1234",
    "lovely1234",
    "sweetheart",
    "sweetheart1",
    "beautiful1",
    "beautiful123",
    "friendship",
    "friends123",
    "forever123",
    "everything",
    "nothing123",
    "something1",
    "fuckyou123",
    "fuckyou1234",
    "blink18222",
    "linkinpark",
    "metallica1",
    "nirvana123",
    "greenday12",
    "eminem1234",
    "rockstar12",
    "rockyou123",
    "iamthebest",
    "iamgod1234",
    "thequickbrownfox",
    "correcthorsebatterystaple",
    "trustnoone",
    "letmein!!!",
    "1qaz!qaz1qaz",
    "!qaz2wsx3edc",
    "!@#$%^&*()",
    "1234qwerasdf",
    "1234qwer!@#$",
    "qwer1234!@#$",
    "asdf1234asdf",
    "zaq1zaq1zaq1",
    "poiuytrewq",
    "lkjhgfdsa1",
    "mnbvcxz123",
    "987654321a",
    "password!1",
    "samsung123",
    "iphone1234",
    "apple12345",
    "google1234",
    "facebook123",
    "microsoft1",
    "linux12345",
    "ubuntu1234",
    "windows123",
    "windows10!",
    "computer1!",
    "superstar1",
    "starlight1",
    "moonlight1",
    "midnight12",
    "wonderful1",
    "australia1",
    "california",
    "california1",
    "newyork123",
    "london1234",
    "december12",
    "november12",
    "september1",
};

bool auth_password_common(const char *password)
{
    for (size_t i = 0; i < sizeof common_passwords / sizeof common_passwords[0]; i++)
        if (strcasecmp(password, common_passwords[i]) == 0)
            return true;
    return false;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 5322 atext: letters, digits and !#$%&'*+-/=?^_`{|}~ */
static bool is_atext(char c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

const char *auth_email_problem(const char *email)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    if (len == 0)
        return "must not be empty";
    if (len > AUTH_EMAIL_MAX)
        return "must be at most 254 characters";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)email[i] >= 0x80)
            return "must be ASCII (internationalised addresses are not accepted)";
    if (!at || strchr(at + 1, '@'))
        return "must hold exactly one '@'";
    size_t local_len = (size_t)(at - email);
    if (local_len == 0 || local_len > 64)
        return "the part before '@' must have 1 to 64 characters";
    for (size_t i = 0; i < local_len; i++) {
        char c = email[i];
        if (c == '.') {
            if (i == 0 || i == local_len - 1 || email[i + 1] == '.')
                return "the part before '@' must not start or end with a dot or hold two in a row";
        } else if (!is_atext(c)) {
            return "the part before '@' holds a character that is not allowed";
        }
    }
    const char *domain = at + 1;
    size_t labels = 0, label_len = 0;
    bool all_digits = true;
    for (const char *p = domain;; p++) {
        char c = *p;
        if (c == '.' || c == '\0') {
            if (label_len == 0 || label_len > 63)
                return "the domain must be dot-separated labels of 1 to 63 characters";
            if (p[-1] == '-')
                return "a domain label must not end with a hyphen";
            labels++;
            if (c == '\0')
                break;
            label_len = 0;
            all_digits = true;
            continue;
        }
        if (c == '-') {
            if (label_len == 0)
                return "a domain label must not start with a hyphen";
        } else if (!is_alpha(c) && !is_digit(c)) {
            return "the domain holds a character that is not allowed";
        }
        if (!is_digit(c))
            all_digits = false;
        label_len++;
    }
    if (labels < 2)
        return "the domain must have at least two labels (example.com)";
    if (all_digits)
        return "the last label of the domain must not be all digits";
    return NULL;
}

void auth_email_normalize(const char *email, char out[AUTH_EMAIL_MAX + 1])
{
    size_t i = 0;
    for (; email[i] && i < AUTH_EMAIL_MAX; i++) {
        char c = email[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    /* A cut never splits a UTF-8 sequence: PostgreSQL refuses such text (login passes any). */
    if (email[i])
        while (i > 0 && ((unsigned char)email[i] & 0xc0) == 0x80)
            i--;
    out[i] = '\0';
}

/* Decodes the well-formed sequence of n bytes at s. */
static unsigned utf8_decode(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0];
    if (n == 2)
        return ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
    if (n == 3)
        return ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
    return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
}

size_t auth_utf8_count(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t n = ag_utf8_sequence_len(p + i, len - i);
        if (n == 0)
            return (size_t)-1;
        i += n;
        count++;
    }
    return count;
}

const char *auth_name_problem(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t len = strlen(name), count = 0;
    bool blank = true;
    for (size_t i = 0; i < len;) {
        size_t n = ag_utf8_sequence_len(p + i, len - i);
        if (n == 0)
            return "must be valid UTF-8";
        unsigned cp = utf8_decode(p + i, n);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return NULL; /* kit_req_fields refuses these already: one error is enough */
        if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
            return "must not hold bidirectional override or isolate characters";
        if ((cp >= 0x200b && cp <= 0x200d) || cp == 0xfeff)
            return "must not hold zero-width characters";
        if (cp == 0x2028 || cp == 0x2029)
            return NULL; /* as control characters */
        if (cp != ' ' && cp != 0xa0 && cp != 0x3000)
            blank = false;
        i += n;
        count++;
    }
    if (count == 0 || blank)
        return "must not be empty";
    if (count > AUTH_NAME_MAX)
        return "must be at most 100 characters";
    return NULL;
}

const char *auth_password_problem(const char *password, const char *email)
{
    size_t count = auth_utf8_count(password, strlen(password));
    if (count == (size_t)-1)
        return "must be valid UTF-8";
    if (count < AUTH_PASSWORD_MIN)
        return "must be at least 10 characters";
    if (count > AUTH_PASSWORD_MAX)
        return "must be at most 256 characters";
    if (auth_password_common(password))
        return "is too common (it is in the list of well-known passwords)";
    if (email && strcasecmp(password, email) == 0)
        return "must not be the e-mail address";
    return NULL;
}

bool auth_role_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 2 || len > 32 || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool auth_permission_valid(const char *permission)
{
    size_t len = strlen(permission);
    if (len < 1 || len > 64 || !(permission[0] >= 'a' && permission[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = permission[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

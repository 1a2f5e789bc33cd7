/* Unsafe libc functions made into compile errors; include it last in every .c file. */
#ifndef AG_BANNED_H
#define AG_BANNED_H

/* Each use expands to an undeclared identifier naming the ban, so the build stops there. */
#undef strcpy
#define strcpy(...) banned_strcpy_use_memcpy_with_a_length
#undef strcat
#define strcat(...) banned_strcat_use_ag_buf
#undef sprintf
#define sprintf(...) banned_sprintf_use_snprintf
#undef vsprintf
#define vsprintf(...) banned_vsprintf_use_vsnprintf
#undef gets
#define gets(...) banned_gets_use_fgets
#undef atoi
#define atoi(...) banned_atoi_use_ag_parse_u64
#undef atol
#define atol(...) banned_atol_use_ag_parse_u64
#undef strtok
#define strtok(...) banned_strtok_use_ag_str

#endif

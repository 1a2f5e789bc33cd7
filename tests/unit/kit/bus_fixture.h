/* Shared by the bus tests: a temporary directory, removed with everything in it. */
#ifndef TEST_BUS_FIXTURE_H
#define TEST_BUS_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int bus_fixture_unlink(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Makes /tmp/agora-test-bus-XXXXXX into dir (64 bytes); 0 or -1. */
static inline int bus_fixture_dir(char dir[64])
{
    snprintf(dir, 64, "/tmp/agora-test-bus-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static inline void bus_fixture_rmdir(const char *dir)
{
    nftw(dir, bus_fixture_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

#endif

/*
 * cfglint.h - checks on the configuration file's own text that libconfig
 * cannot make: libconfig 1.5 (Debian 12) reads an integer literal without
 * the L suffix with atoi(), so "timeout = 4294967301;" silently becomes 5
 * and passes every range check. This file only reads text; config.c does
 * the parsing.
 */
#ifndef SC_CFGLINT_H
#define SC_CFGLINT_H

#include <stddef.h>

/* 0, or -1 with "FILE:LINE: setting: message" in err when an integer
 * literal of path (or of a file it @includes) does not fit in 32 bits. */
int cfglint_int_literals(const char *path, char *err, size_t errlen);

#endif

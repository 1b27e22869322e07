/*
 * cfglint.h - checks on a configuration's own text that libconfig cannot
 * make: libconfig 1.5 (Debian 12) reads an integer literal without the L
 * suffix with atoi(), so "timeout = 4294967301;" silently becomes 5 and
 * passes every range check; and it cannot be told to refuse @include, which
 * text that is not a file (config_load_buf) must not use. Both checks run
 * over the text in memory that config.c hands to libconfig; config.c does
 * the parsing.
 */
#ifndef SC_CFGLINT_H
#define SC_CFGLINT_H

#include <stddef.h>

/* 0, or -1 with "NAME:LINE: setting: message" in err when an integer
 * literal of text[0..len) (named NAME in the message), or of a file it
 * @includes, does not fit in 32 bits. An @include'd file is read the way
 * libconfig 1.5 reads it: its path as written, relative to the current
 * directory. */
int cfglint_int_literals(const char *name, const char *text, size_t len, char *err, size_t errlen);

/* 0, or -1 with "NAME:LINE: @include: message" in err when text[0..len)
 * has an @include outside strings and comments; reads no file. */
int cfglint_no_include(const char *name, const char *text, size_t len, char *err, size_t errlen);

#endif

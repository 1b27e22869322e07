/*
 * fuzz_config.c - the configuration loader (libconfig's parser, the
 * integer-literal lint, the tables and the validation pass) over arbitrary
 * file contents: it must answer with a config or a "FILE:LINE: ..." error,
 * never crash or leak. The input is handed over as a memfd, so no file is
 * written.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	struct sc_config *cf;
	int fd;

	if (size > 65536 || memchr(data, '@', size) != NULL)
		return 0;	/* no @include: it would read other files */
	fd = memfd_create("fuzz-config", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err[0] = '\0';
	cf = config_load(path, err, sizeof(err));
	if (cf == NULL && err[0] == '\0')
		abort();	/* every refusal must say why */
	if (cf != NULL && cf->pool.nhosts == 0)
		abort();	/* validation lets nothing through without hosts */
	config_free(cf);
	close(fd);
	return 0;
}

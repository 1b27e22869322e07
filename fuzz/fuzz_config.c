/*
 * fuzz_config.c - the configuration loader (libconfig's parser, the
 * integer-literal lint, the tables and the validation pass) over arbitrary
 * text: it must answer with a config or a "fuzz:LINE: ..." error, never
 * crash or leak. The input goes through config_load_buf(), so no file is
 * written or read: an @include is refused, not followed, and inputs that
 * hold one are fuzzed like any other.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct sc_config *cf;

	if (size > 65536)
		return 0;
	err[0] = '\0';
	cf = config_load_buf("fuzz", (const char *)data, size, err, sizeof(err));
	if (cf == NULL && strncmp(err, "fuzz:", 5) != 0)
		abort();	/* every refusal must say why, and name the text */
	if (cf != NULL && cf->pool.nhosts == 0)
		abort();	/* validation lets nothing through without hosts */
	if (cf != NULL && strcmp(cf->path, "fuzz") != 0)
		abort();
	config_free(cf);
	return 0;
}

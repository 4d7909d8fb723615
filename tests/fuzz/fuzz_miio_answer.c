/*
 * libFuzzer target for what a miIO device answers, as the model table reads
 * it: the bytes as the JSON result of a poll (legacy get_prop and MIoT
 * get_properties rows), of a set, and of miIO.info, for every model row.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_miio_answer.c plugins/wifi/miio_models.c plugins/wifi/convert.c \
 *       $(pkg-config --libs libcjson) -lm -o fuzz_miio_answer
 *   ./fuzz_miio_answer tests/fuzz/corpus/miio_answer
 * fuzz-sources: plugins/wifi/miio_models.c plugins/wifi/convert.c
 */
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/wifi/miio_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void row(const struct miio_model *m, const cJSON *result)
{
	struct hearth_attr attrs[MIIO_PROPS_MAX];
	int hints[MIIO_PROPS_MAX];
	char err[200], model[MIIO_MODEL_MAX];
	size_t n = 0;
	for (size_t i = 0; i < MIIO_PROPS_MAX; i++)
		hints[i] = (int)i * 20 - 1;
	(void)miio_poll_parse(m, 0, m->n_props, result, hints, attrs, MIIO_PROPS_MAX, &n);
	(void)miio_poll_parse(m, 1, m->n_props, result, NULL, attrs, 2, &n);
	(void)miio_set_result_check(m, result, err, sizeof(err));
	(void)miio_info_model(result, model, sizeof(model));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	cJSON *result = cJSON_ParseWithLength((const char *)data, size);
	if (!result)
		return 0;
	for (size_t i = 0; i < miio_model_count(); i++)
		row(miio_model_at(i), result);
	row(miio_model_generic(), result);
	cJSON_Delete(result);
	return 0;
}

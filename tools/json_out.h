/* SPDX-License-Identifier: MIT */
/* Building JSON output with json-c: each helper takes ownership of val, also on failure. */
#ifndef PAGEMAP_JSON_OUT_H
#define PAGEMAP_JSON_OUT_H
#include <json-c/json.h>

/* obj[key] = val. -ENOMEM when val is NULL (a failed constructor) or on failure. */
int json_out_add(json_object *obj, const char *key, json_object *val);
/* arr += val, likewise. */
int json_out_append(json_object *arr, json_object *val);
/* obj[key] = v printed with that many decimals, or null when v is not a
 * number (a ratio to a baseline that was not measured). */
int json_out_add_num(json_object *obj, const char *key, double v, int decimals);
/* obj[key] = s, or JSON null for NULL s (json-c's null is a NULL pointer). */
int json_out_add_str_or_null(json_object *obj, const char *key, const char *s);
#endif

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "json_out.h"

int json_out_add(json_object *obj, const char *key, json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(obj, key, val)) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

int json_out_append(json_object *arr, json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_array_add(arr, val)) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

int json_out_add_str_or_null(json_object *obj, const char *key, const char *s)
{
	if (!s)
		return json_object_object_add(obj, key, NULL) ? -ENOMEM : 0;
	return json_out_add(obj, key, json_object_new_string(s));
}

int json_out_add_num(json_object *obj, const char *key, double v, int decimals)
{
	char buf[64];

	if (!isfinite(v))
		return json_object_object_add(obj, key, NULL) ? -ENOMEM : 0;
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return json_out_add(obj, key, json_object_new_double_s(v, buf));
}

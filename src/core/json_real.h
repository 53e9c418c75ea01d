/*
 * The text of a JSON real as jansson 2.14 writes it with default flags. It
 * is printf "%.17g" (17 significant digits, correctly rounded) with '.' as
 * the decimal point in every locale. ".0" is appended when the text has
 * neither '.' nor 'e', and the exponent has no '+' sign or leading zeros.
 * Examples: 1.0, 0.10000000000000001, -0.0, 1e17, 9.9999999999999995e-8.
 */
#ifndef CV_CORE_JSON_REAL_H
#define CV_CORE_JSON_REAL_H

#include <stddef.h>

/* Size of a buffer large enough for any text cv_json_real_format writes. */
#define CV_JSON_REAL_MAX 48

/*
 * Writes the text of value into out, without a terminating NUL, and
 * returns its length. value must be finite, as every jansson real is.
 * Returns 0 only if snprintf fails, which it does not for finite values.
 */
size_t cv_json_real_format(char out[CV_JSON_REAL_MAX], double value);

#endif

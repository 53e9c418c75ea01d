/*
 * Formatting a double as jansson 2.14 does, without printf where that is
 * cheap to avoid. glibc's snprintf "%.17g" costs about 2,900 instructions
 * per real, most of it in multi-precision arithmetic that is only needed
 * for very large and very small magnitudes. A double is m * 2^e with an
 * integer m below 2^53, so its exact decimal digits can be computed in
 * 128-bit integers whenever m * 2^e fits below 2^127 (e <= 74) or its
 * fraction needs at most 124 bits. That covers every double from about
 * 2.1e-22 to 1.7e38 and costs a few hundred instructions. Other values,
 * and compilers without unsigned __int128, go through snprintf.
 *
 * NOTE: printf rounds in the current floating-point rounding mode, and the
 * integer path always rounds to nearest with ties to even, the default
 * mode. The two agree unless the process calls fesetround, which conveyor
 * never does.
 */
#include "core/json_real.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Significant digits of "%.17g", jansson's default precision. */
#define PRECISION 17

/* Writes the digits of value, most significant first, and returns how many. */
static int u64_digits(char *out, uint64_t value)
{
    char reversed[20];
    int count = 0;

    do {
        reversed[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int i = 0; i < count; i++)
        out[i] = reversed[count - 1 - i];
    return count;
}

static bool is_real_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e';
}

/*
 * Formats value with snprintf and rewrites the result the way jansson does.
 * The locale's decimal point, whatever bytes it is made of, becomes '.'.
 */
static size_t format_with_printf(char *out, double value)
{
    int printed = snprintf(out, CV_JSON_REAL_MAX - 2, "%.17g", value);
    if (printed < 0 || printed >= CV_JSON_REAL_MAX - 2)
        return 0;
    size_t length = (size_t)printed;

    size_t point = 0;
    while (point < length && is_real_char(out[point]))
        point++;
    if (point < length) {
        size_t after = point + 1;
        while (after < length && !is_real_char(out[after]))
            after++;
        out[point] = '.';
        memmove(out + point + 1, out + after, length - after);
        length -= after - point - 1;
    }

    char *e = memchr(out, 'e', length);
    if (e == NULL && point == length) {
        memcpy(out + length, ".0", 2);
        length += 2;
    }
    if (e != NULL) {
        char *digits = e + 1;
        if (*digits == '-')
            digits++;
        char *first = digits;
        if (*first == '+')
            first++;
        while (*first == '0' && first + 1 < out + length)
            first++;
        memmove(digits, first, (size_t)(out + length - first));
        length -= (size_t)(first - digits);
    }
    return length;
}

#ifdef __SIZEOF_INT128__

typedef unsigned __int128 uint128;

/* The leading significant digits of a positive number: 0.d1d2d3... * 10^(exponent + 1). */
typedef struct decimal {
    char digits[PRECISION]; /* ASCII, most significant first */
    int count;              /* 1 to PRECISION */
    int exponent;           /* the power of ten of digits[0] */
} decimal;

/* Writes all digits of value (below 2^127) and returns how many. */
static int u128_digits(char *out, uint128 value)
{
    const uint64_t ten_to_19 = 10000000000000000000ULL;

    if ((value >> 64) == 0)
        return u64_digits(out, (uint64_t)value);
    /* value < 2^127, so value / 10^19 < 1.8e19 fits 64 bits. */
    uint64_t high = (uint64_t)(value / ten_to_19);
    uint64_t low = (uint64_t)(value - (uint128)high * ten_to_19);
    int count = u64_digits(out, high);
    for (int i = 18; i >= 0; i--) {
        out[count + i] = (char)('0' + low % 10);
        low /= 10;
    }
    return count + 19;
}

/*
 * Whether the digits dropped after the last kept one round it up, ties to
 * even. No integer double is an exact tie (its odd part would need 18
 * digits, more than 53 bits), but the rule is kept whole.
 */
static bool dropped_digits_round_up(const char *dropped, int count, char last_kept)
{
    if (dropped[0] != '5')
        return dropped[0] > '5';
    for (int i = 1; i < count; i++) {
        if (dropped[i] != '0')
            return true;
    }
    return (last_kept - '0') % 2 == 1;
}

/* Rounds the integer m * 2^e (e >= 0) to PRECISION digits, or returns false above 2^127. */
static bool integer_digits(decimal *d, bool *round_up, uint64_t m, int e)
{
    char all[40];

    if (e > 74)
        return false;
    int count = u128_digits(all, (uint128)m << e);
    d->exponent = count - 1;
    d->count = count < PRECISION ? count : PRECISION;
    memcpy(d->digits, all, (size_t)d->count);
    *round_up = count > PRECISION &&
                dropped_digits_round_up(all + PRECISION, count - PRECISION, all[PRECISION - 1]);
    return true;
}

/*
 * Rounds m / 2^q (q >= 1) to PRECISION digits, or returns false when
 * q > 124. The fraction is kept as an integer below 2^q, and each digit is
 * the integer part of ten times the fraction, so nothing is rounded on the
 * way.
 */
static bool fraction_digits(decimal *d, bool *round_up, uint64_t m, int q)
{
    if (q > 124)
        return false;
    uint128 mask = ((uint128)1 << q) - 1;
    uint128 fraction = (uint128)m & mask;
    uint64_t whole = q >= 64 ? 0 : m >> q;

    if (whole != 0) {
        /* whole < 2^53 has at most 16 digits, all of them kept. */
        d->count = u64_digits(d->digits, whole);
        d->exponent = d->count - 1;
    } else {
        d->exponent = 0;
        do {
            fraction *= 10;
            d->exponent--;
        } while ((fraction >> q) == 0);
        d->digits[0] = (char)('0' + (int)(fraction >> q));
        d->count = 1;
        fraction &= mask;
    }
    while (d->count < PRECISION && fraction != 0) {
        fraction *= 10;
        d->digits[d->count++] = (char)('0' + (int)(fraction >> q));
        fraction &= mask;
    }

    uint128 half = (uint128)1 << (q - 1);
    *round_up = fraction > half ||
                (fraction == half && (d->digits[d->count - 1] - '0') % 2 == 1);
    return true;
}

static void round_last_digit_up(decimal *d)
{
    int i = d->count - 1;
    while (i >= 0 && d->digits[i] == '9') {
        d->digits[i] = '0';
        i--;
    }
    if (i >= 0) {
        d->digits[i]++;
        return;
    }
    /* All nines: 99...9 becomes 100...0, one power of ten higher. */
    d->digits[0] = '1';
    d->exponent++;
}

/* Lays d out as "%.17g" does, applies jansson's changes and returns the length. */
static size_t format_decimal(char *out, bool negative, const decimal *d)
{
    char *p = out;
    int count = d->count;
    int x = d->exponent;

    while (count > 1 && d->digits[count - 1] == '0')
        count--;
    if (negative)
        *p++ = '-';

    if (x >= 0 && x < PRECISION) {
        for (int i = 0; i <= x; i++)
            *p++ = i < count ? d->digits[i] : '0';
        *p++ = '.';
        if (count > x + 1) {
            memcpy(p, d->digits + x + 1, (size_t)(count - x - 1));
            p += count - x - 1;
        } else {
            *p++ = '0'; /* jansson's ".0" for a real with an integer value */
        }
    } else if (x < 0 && x >= -4) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *p++ = '0';
        memcpy(p, d->digits, (size_t)count);
        p += count;
    } else {
        *p++ = d->digits[0];
        if (count > 1) {
            *p++ = '.';
            memcpy(p, d->digits + 1, (size_t)(count - 1));
            p += count - 1;
        }
        *p++ = 'e';
        if (x < 0)
            *p++ = '-';
        p += u64_digits(p, (uint64_t)(x < 0 ? -x : x));
    }
    return (size_t)(p - out);
}

size_t cv_json_real_format(char out[CV_JSON_REAL_MAX], double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    bool negative = (bits >> 63) != 0;
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t m = bits & ((UINT64_C(1) << 52) - 1);

    if (biased == 0x7FF)
        return format_with_printf(out, value);
    if (biased == 0 && m == 0) {
        size_t length = negative ? 4 : 3;
        memcpy(out, negative ? "-0.0" : "0.0", length);
        return length;
    }

    int e = biased == 0 ? -1074 : biased - 1075;
    if (biased != 0)
        m |= UINT64_C(1) << 52;
    /* An odd m keeps the fraction as short as it can be. */
    int zeros = __builtin_ctzll(m);
    m >>= zeros;
    e += zeros;

    decimal d;
    bool round_up;
    bool exact = e >= 0 ? integer_digits(&d, &round_up, m, e)
                        : fraction_digits(&d, &round_up, m, -e);
    if (!exact)
        return format_with_printf(out, value);
    if (round_up)
        round_last_digit_up(&d);
    return format_decimal(out, negative, &d);
}

#else

size_t cv_json_real_format(char out[CV_JSON_REAL_MAX], double value)
{
    return format_with_printf(out, value);
}

#endif

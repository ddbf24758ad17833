/*
 * netspec.init._kernels: the block streams' hot loops in C: PCG64's raw words and the transforms
 * (words -> values).
 *
 * PCG64 is NumPy's (O'Neill's PCG XSL-RR 128/64: state = state * M + inc, then the output of the new
 * state); every kernel takes the bit generator's state (the public `bitgen.state` integers, split in
 * 64-bit halves), draws the words NumPy's `random_raw` would, and returns the state after them, so
 * the Python side continues exactly where NumPy would. Four interleaved copies of the generator, each
 * jumping four steps at a time, keep the multiplier busy (the same words, in the same order).
 *
 * Each function computes, value by value, exactly the IEEE operations of its NumPy reference in
 * netspec.init.streams / netspec.init.ziggurat / netspec.init.portable_math, in the same order and
 * the same precision: integer and bit operations, exact integer -> float conversions (or
 * correctly rounded ones, as NumPy's casts), and single + - * / sqrt, each correctly rounded. So the
 * bytes are those of the NumPy path on every IEEE 754 machine. Build flags forbid what would break
 * that (setup.py): no fused multiply-add contraction (-ffp-contract=off), no fast-math; float
 * arithmetic is evaluated in its own precision (FLT_EVAL_METHOD 0 on the SSE2 / NEON targets
 * netspec builds for). netspec.init.kernels checks the result against the NumPy reference once per
 * process before using this module, and falls back to NumPy if the two ever disagree.
 *
 * Buffers come through the buffer protocol (no NumPy C API at build time); the Python wrapper
 * passes C-contiguous arrays of the documented types, and every length is checked here too. The
 * loops run without the GIL, so the block pool's threads work in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef __SIZEOF_INT128__
#error "netspec's kernels need a 128-bit integer type (GCC or Clang on a 64-bit target); NumPy is used instead"
#endif
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "netspec's kernels need float arithmetic evaluated in its own precision (FLT_EVAL_METHOD == 0)"
#endif

static inline float f32_from_bits(int32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline int32_t bits_from_f32(float f) { int32_t b; memcpy(&b, &f, 4); return b; }
static inline uint32_t ubits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline float f32_from_ubits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }

/* Arithmetic right shift of signed integers (what NumPy's right_shift does), written so that it
 * does not rely on the implementation-defined behaviour of >> on negative values. */
static inline int32_t sar32(int32_t x, int s) { return x >= 0 ? x >> s : ~(~x >> s); }
static inline int64_t sar64(int64_t x, int s) { return x >= 0 ? x >> s : ~(~x >> s); }

/* Whether a buffer format (struct syntax) is a native-order float (kind 'f') or integer (kind 'i'). */
static int format_ok(const char *format, char kind) {
    if (format == NULL) return kind == 'i';  /* unsigned bytes */
    if (*format == '@' || *format == '=') format++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    else if (*format == '>' || *format == '!') format++;
#else
    else if (*format == '<') format++;
#endif
    if (format[0] == '\0' || format[1] != '\0') return 0;
    return kind == 'f' ? strchr("fd", format[0]) != NULL : strchr("bBhHiIlLqQnN", format[0]) != NULL;
}

/* Get a C-contiguous buffer of native-order floats (kind 'f') or integers ('i') with the given item size
 * and at least `count` items. */
static int get_buffer(PyObject *obj, Py_buffer *view, int writable, char kind, Py_ssize_t itemsize, Py_ssize_t count,
                      const char *what) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len < count * itemsize || !format_ok(view->format, kind)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected at least %zd native %s of %zd bytes, got %zd bytes of %zd-byte items (format %s)",
                     what, count, kind == 'f' ? "floats" : "integers", itemsize, view->len, view->itemsize,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ instruction sets
 * The vectorizable loops are compiled twice on x86-64 with GCC or Clang: for the baseline (SSE2) and
 * for AVX2 (wider vectors; FMA is not enabled, and contraction is off anyway), chosen at import by
 * what the CPU supports. Both compute the same IEEE operations, so the same bits; the self-check and
 * the tests run each against NumPy (set_isa). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NETSPEC_AVX2 1
#define TARGET_AVX2 __attribute__((target("avx2")))
#endif

static int use_avx2 = 0;

#define VARIANTS(NAME, PARAMS, ARGS, BODY)                                 \
    static void NAME##_base PARAMS BODY                                    \
    VARIANT_AVX2(NAME, PARAMS, BODY)                                       \
    static void NAME PARAMS {                                              \
        if (use_avx2) { CALL_AVX2(NAME, ARGS); return; }                   \
        NAME##_base ARGS;                                                  \
    }
#ifdef NETSPEC_AVX2
#define VARIANT_AVX2(NAME, PARAMS, BODY) TARGET_AVX2 static void NAME##_avx2 PARAMS BODY
#define CALL_AVX2(NAME, ARGS) NAME##_avx2 ARGS
#else
#define VARIANT_AVX2(NAME, PARAMS, BODY)
#define CALL_AVX2(NAME, ARGS) NAME##_base ARGS
#endif

/* ------------------------------------------------------------------ PCG64 */

typedef unsigned __int128 u128;
typedef struct { u128 s, inc; } pcg_t;

#define PCG_MULT (((u128)0x2360ED051FC65DA4ULL << 64) | 0x4385DF649FCCF645ULL)

static inline uint64_t pcg_output(u128 s) {
    uint64_t x = (uint64_t)(s >> 64) ^ (uint64_t)s;
    unsigned rot = (unsigned)(s >> 122);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

/* The next n words of g into dst (NumPy's random_raw(n)); g ends at the state of the last word.
 * Stored in native byte order, as random_raw: a uint32 view reads 32-bit halves in memory order, as
 * the NumPy float32 uniform and Box-Muller paths do (low half first on little-endian machines). The
 * ziggurat's NumPy path reads the low half first on every machine, so on a big-endian machine its
 * float32 self-check fails and NumPy runs it there. */
static void pcg_fill(pcg_t *g, uint64_t *dst, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (n >= 8) {
        const u128 m = PCG_MULT, m2 = m * m, m3 = m2 * m, m4 = m3 * m;
        const u128 c4 = g->inc * (m3 + m2 + m + 1);
        u128 s0 = g->s * m + g->inc, s1 = s0 * m + g->inc, s2 = s1 * m + g->inc, s3 = s2 * m + g->inc;
        for (; i + 4 <= n; i += 4) {
            dst[i] = pcg_output(s0);
            dst[i + 1] = pcg_output(s1);
            dst[i + 2] = pcg_output(s2);
            dst[i + 3] = pcg_output(s3);
            g->s = s3;
            s0 = s0 * m4 + c4;
            s1 = s1 * m4 + c4;
            s2 = s2 * m4 + c4;
            s3 = s3 * m4 + c4;
        }
    }
    for (; i < n; i++) {
        g->s = g->s * PCG_MULT + g->inc;
        dst[i] = pcg_output(g->s);
    }
}

static int parse_state(PyObject *obj, pcg_t *g) {
    unsigned long long s_hi, s_lo, inc_hi, inc_lo;
    if (!PyArg_ParseTuple(obj, "KKKK;state: (state_hi, state_lo, inc_hi, inc_lo)", &s_hi, &s_lo, &inc_hi, &inc_lo))
        return -1;
    g->s = ((u128)s_hi << 64) | s_lo;
    g->inc = ((u128)inc_hi << 64) | inc_lo;
    return 0;
}

static PyObject *state_tuple(const pcg_t *g) {
    return Py_BuildValue("(KK)", (unsigned long long)(g->s >> 64), (unsigned long long)g->s);
}

/* n words of g into a new buffer (NULL and MemoryError when out of memory). */
static uint64_t *draw(pcg_t *g, Py_ssize_t n) {
    uint64_t *words = PyMem_RawMalloc((size_t)(n > 0 ? n : 1) * sizeof(uint64_t));
    if (words == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    pcg_fill(g, words, n);
    Py_END_ALLOW_THREADS
    return words;
}

/* raw(state, out: uint64[n]) -> (None, state): NumPy's random_raw(n) (for the self-check). */
static PyObject *raw(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *so, *oo;
    pcg_t g;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "OO", &so, &oo) || parse_state(so, &g) < 0) return NULL;
    if (get_buffer(oo, &out, 1, 'i', 8, 0, "out") < 0) return NULL;
    Py_ssize_t n = out.len / 8;
    Py_BEGIN_ALLOW_THREADS
    pcg_fill(&g, (uint64_t *)out.buf, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    return Py_BuildValue("(ON)", Py_None, state_tuple(&g));
}

/* ------------------------------------------------------------------ uniform on the symmetric grid */

VARIANTS(uniform_f32_loop, (const int32_t *restrict k, float *restrict o, Py_ssize_t n, float m), (k, o, n, m), {
    for (Py_ssize_t i = 0; i < n; i++) o[i] = (float)(sar32(k[i], 7) | 1) * m;
})

VARIANTS(uniform_f64_loop, (const int64_t *restrict k, double *restrict o, Py_ssize_t n, double m), (k, o, n, m), {
    for (Py_ssize_t i = 0; i < n; i++) o[i] = (double)(sar64(k[i], 10) | 1) * m;
})

/* uniform(state, out, mult) for values of `size` bytes -> (None, state):
 * float32 (4): ceil(n / 2) words, 32-bit halves k (low first), out[i] = float((int32(k[i]) >> 7) | 1) * float(mult);
 * float64 (8): n words k, out[i] = double((int64(k[i]) >> 10) | 1) * mult   (streams.fill_symmetric_unit) */
static PyObject *uniform(PyObject *args, Py_ssize_t size) {
    PyObject *so, *oo;
    double mult;
    pcg_t g;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "OOd", &so, &oo, &mult) || parse_state(so, &g) < 0) return NULL;
    if (get_buffer(oo, &out, 1, 'f', size, 0, "out") < 0) return NULL;
    Py_ssize_t n = out.len / size;
    uint64_t *words = draw(&g, size == 4 ? (n + 1) / 2 : n);
    if (words == NULL) { PyBuffer_Release(&out); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    if (size == 4) uniform_f32_loop((const int32_t *)words, (float *)out.buf, n, (float)mult);
    else uniform_f64_loop((const int64_t *)words, (double *)out.buf, n, mult);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(words);
    PyBuffer_Release(&out);
    return Py_BuildValue("(ON)", Py_None, state_tuple(&g));
}

static PyObject *uniform_f32(PyObject *Py_UNUSED(self), PyObject *args) { return uniform(args, 4); }

static PyObject *uniform_f64(PyObject *Py_UNUSED(self), PyObject *args) { return uniform(args, 8); }

/* ------------------------------------------------------------------ Box-Muller, float32 (stream 1) */

/* Constants, passed from Python (the float32 values portable_math and streams use), in this order. */
enum { C_2_9, C_2_7, C_2_5, C_2_3, C_2, C_LN2, C_S0, C_S1, C_S2, C_U_MUL, C_U_ADD, C_PHI_MUL, C_RADIUS_MUL, C_COUNT };

/* portable_math.log for one value: u = 2^k m, ln m = 2 atanh(s), s = (m - 1) / (m + 1). */
static inline float portable_log(float u, const float *c) {
    int32_t bits = bits_from_f32(u);
    int32_t k = sar32(bits - 0x3F330000, 23);
    float m = f32_from_bits(bits - (int32_t)((uint32_t)k << 23));
    float den = m + 1.0f;
    float s = (m - 1.0f) / den;
    float z = s * s;
    float p = z * c[C_2_9];
    p = p + c[C_2_7];
    p = p * z;
    p = p + c[C_2_5];
    p = p * z;
    p = p + c[C_2_3];
    p = p * z;
    p = p + c[C_2];
    p = p * s;
    return p + (float)k * c[C_LN2];
}

/* One pair of streams.fill_standard_normal's float32 values: x from k1 (radius) and k2 (angle), y likewise. */
static inline void box_muller_pair(uint32_t k1, uint32_t k, const float *c, float *x, float *y) {
    float u = (float)k1 * c[C_U_MUL];
    u = u + c[C_U_ADD];
    float radius = portable_log(u, c) * c[C_RADIUS_MUL];
    radius = sqrtf(radius);
    float phi = (float)(k & ((1u << 29) - 1u)) * c[C_PHI_MUL];
    /* portable_math.cos_sin */
    float z = phi * phi;
    float sn = z * c[C_S0];
    sn = sn + c[C_S1];
    sn = sn * z;
    sn = sn + c[C_S2];
    sn = sn * z;
    sn = sn * phi;
    sn = sn + phi;
    float cs = sn * sn;
    cs = 1.0f - cs;
    cs = sqrtf(cs);
    /* streams._octant: bit 29 swaps x and y, bit 31 negates x, bit 30 negates y */
    uint32_t xb = ubits(cs), yb = ubits(sn);
    uint32_t swap = 0u - ((k >> 29) & 1u);
    uint32_t diff = (xb ^ yb) & swap;
    xb ^= diff;
    yb ^= diff;
    xb ^= k & 0x80000000u;
    yb ^= (k << 1) & 0x80000000u;
    *x = f32_from_ubits(xb) * radius;
    *y = f32_from_ubits(yb) * radius;
}

VARIANTS(box_muller_loop,
         (const uint32_t *restrict k1, const uint32_t *restrict k2, const float *restrict c, float *restrict x,
          float *restrict y, Py_ssize_t n),
         (k1, k2, c, x, y, n), {
    for (Py_ssize_t i = 0; i < n; i++) box_muller_pair(k1[i], k2[i], c, x + i, y + i);
})

/* box_muller_f32(state, out: float32[n], consts: float32[C_COUNT]) -> (None, state): h = ceil(n / 2) words
 * as 2h 32-bit halves (low first), k1 the first h and k2 the next h; streams.fill_standard_normal for
 * float32, value by value: out[i] = x_i, out[h + i] = y_i. */
static PyObject *box_muller_f32(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *so, *oo, *co;
    pcg_t g;
    Py_buffer out, consts;
    if (!PyArg_ParseTuple(args, "OOO", &so, &oo, &co) || parse_state(so, &g) < 0) return NULL;
    if (get_buffer(oo, &out, 1, 'f', 4, 0, "out") < 0) return NULL;
    if (get_buffer(co, &consts, 0, 'f', 4, C_COUNT, "consts") < 0) { PyBuffer_Release(&out); return NULL; }
    float c[C_COUNT];
    memcpy(c, consts.buf, sizeof c);
    PyBuffer_Release(&consts);
    Py_ssize_t n = out.len / 4, half = (n + 1) / 2, second = n - half;
    uint64_t *words = draw(&g, half);
    if (words == NULL) { PyBuffer_Release(&out); return NULL; }
    const uint32_t *k1 = (const uint32_t *)words;
    float *o = (float *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    box_muller_loop(k1, k1 + half, c, o, o + half, second);
    if (second < half) {
        float unused;
        box_muller_pair(k1[second], k1[half + second], c, o + second, &unused);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(words);
    PyBuffer_Release(&out);
    return Py_BuildValue("(ON)", Py_None, state_tuple(&g));
}

/* ------------------------------------------------------------------ ziggurat fast path (stream 2) */

/* The ziggurat's fast path over words k: out[i] = T(j) * width[layer], layer = k & 255,
 * j = (k >> SHIFT) | 1, and flag[i] = |j| >= limit[layer] (vectorizable: gathers on AVX2). */
#define ZIGGURAT_VALUES(NAME, INT, FLOAT, SAR, SHIFT)                                                        \
    VARIANTS(NAME,                                                                                          \
             (const INT *restrict k, FLOAT *restrict o, const FLOAT *restrict wd, const INT *restrict lim,   \
              unsigned char *restrict flag, Py_ssize_t n),                                                  \
             (k, o, wd, lim, flag, n), {                                                                    \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                \
            INT layer = k[i] & 255;                                                                         \
            INT j = SAR(k[i], SHIFT) | 1;                                                                   \
            o[i] = (FLOAT)j * wd[layer];                                                                    \
            flag[i] = (j < 0 ? -j : j) >= lim[layer];                                                       \
        }                                                                                                   \
    })
ZIGGURAT_VALUES(ziggurat_values_f32, int32_t, float, sar32, 7)
ZIGGURAT_VALUES(ziggurat_values_f64, int64_t, double, sar64, 10)

#define ZIGGURAT_CHUNK 2048

/* The whole fast path, chunk by chunk: the values and flags, then the flagged positions (about 1.5 %)
 * and their words to pos, rej, in increasing order; returns their count. */
#define ZIGGURAT_LOOP(VALUES)                                                        \
    for (Py_ssize_t base = 0; base < n; base += ZIGGURAT_CHUNK) {                    \
        Py_ssize_t m = n - base < ZIGGURAT_CHUNK ? n - base : ZIGGURAT_CHUNK;        \
        VALUES(k + base, o + base, wd, lim, flag, m);                                \
        for (Py_ssize_t i = 0; i < m; i++) {                                         \
            if (flag[i]) {                                                           \
                pos[count] = base + i;                                               \
                rej[count++] = k[base + i];                                          \
            }                                                                        \
        }                                                                            \
    }

/* ziggurat(state, out, width, limit, positions, words) for values of `size` bytes (4: float32 from
 * ceil(n / 2) words' 32-bit halves, low first; 8: float64 from n words) -> (count, state). */
static PyObject *ziggurat(PyObject *args, Py_ssize_t size) {
    PyObject *so, *obj[5];
    pcg_t g;
    if (!PyArg_ParseTuple(args, "OOOOOO", &so, &obj[0], &obj[1], &obj[2], &obj[3], &obj[4]) || parse_state(so, &g) < 0)
        return NULL;
    /* out, width, limit, positions, rejected words */
    static const char *names[5] = {"out", "width", "limit", "positions", "words"};
    const int writable[5] = {1, 0, 0, 1, 1};
    Py_buffer buf[5];
    int got = 0;
    Py_ssize_t n = 0;
    for (; got < 5; got++) {
        Py_ssize_t itemsize = got == 3 ? (Py_ssize_t)sizeof(Py_ssize_t) : size;
        Py_ssize_t count = got == 1 || got == 2 ? 256 : n;
        char kind = got == 0 || got == 1 ? 'f' : 'i';
        if (get_buffer(obj[got], &buf[got], writable[got], kind, itemsize, count, names[got]) < 0) break;
        if (got == 0) n = buf[0].len / size;
    }
    uint64_t *words = got == 5 ? draw(&g, size == 4 ? (n + 1) / 2 : n) : NULL;
    Py_ssize_t count = 0;
    if (words != NULL) {
        Py_ssize_t *pos = (Py_ssize_t *)buf[3].buf;
        unsigned char flag[ZIGGURAT_CHUNK];
        Py_BEGIN_ALLOW_THREADS
        if (size == 4) {
            const int32_t *k = (const int32_t *)words, *lim = (const int32_t *)buf[2].buf;
            const float *wd = (const float *)buf[1].buf;
            float *o = (float *)buf[0].buf;
            int32_t *rej = (int32_t *)buf[4].buf;
            ZIGGURAT_LOOP(ziggurat_values_f32)
        } else {
            const int64_t *k = (const int64_t *)words, *lim = (const int64_t *)buf[2].buf;
            const double *wd = (const double *)buf[1].buf;
            double *o = (double *)buf[0].buf;
            int64_t *rej = (int64_t *)buf[4].buf;
            ZIGGURAT_LOOP(ziggurat_values_f64)
        }
        Py_END_ALLOW_THREADS
        PyMem_RawFree(words);
    }
    while (got > 0) PyBuffer_Release(&buf[--got]);
    if (words == NULL) return NULL;
    return Py_BuildValue("(nN)", count, state_tuple(&g));
}

/* ziggurat_f32(state, out: float32[n], width: float32[256], limit: int32[256], positions: intp[n],
 *              words: int32[n]) -> (count, state) */
static PyObject *ziggurat_f32(PyObject *Py_UNUSED(self), PyObject *args) { return ziggurat(args, 4); }

/* ziggurat_f64(state, out: float64[n], width: float64[256], limit: int64[256], positions: intp[n],
 *              words: int64[n]) -> (count, state) */
static PyObject *ziggurat_f64(PyObject *Py_UNUSED(self), PyObject *args) { return ziggurat(args, 8); }

/* set_isa(name) -> name: "baseline", "avx2" (x86-64 with AVX2 only) or "auto" (the best this CPU has). */
static PyObject *set_isa(PyObject *Py_UNUSED(self), PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int avx2 = 0;
#ifdef NETSPEC_AVX2
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
#endif
    if (strcmp(name, "baseline") == 0) use_avx2 = 0;
    else if (strcmp(name, "auto") == 0) use_avx2 = avx2;
    else if (strcmp(name, "avx2") == 0 && avx2) use_avx2 = 1;
    else return PyErr_Format(PyExc_ValueError, "instruction set %s: not available here", name);
    return PyUnicode_FromString(use_avx2 ? "avx2" : "baseline");
}

static PyMethodDef methods[] = {
    {"set_isa", set_isa, METH_VARARGS, "set_isa(name) -> name: the loops' instruction set (baseline, avx2, auto)."},
    {"raw", raw, METH_VARARGS, "raw(state, out) -> (None, state): NumPy's PCG64 random_raw into out (uint64)."},
    {"uniform_f32", uniform_f32, METH_VARARGS, "uniform_f32(state, out, mult) -> (None, state): the symmetric grid, float32."},
    {"uniform_f64", uniform_f64, METH_VARARGS, "uniform_f64(state, out, mult) -> (None, state): the symmetric grid, float64."},
    {"box_muller_f32", box_muller_f32, METH_VARARGS, "box_muller_f32(state, out, consts) -> (None, state): stream 1's normal."},
    {"ziggurat_f32", ziggurat_f32, METH_VARARGS,
     "ziggurat_f32(state, out, width, limit, positions, words) -> (count, state): stream 2's fast path."},
    {"ziggurat_f64", ziggurat_f64, METH_VARARGS,
     "ziggurat_f64(state, out, width, limit, positions, words) -> (count, state): stream 2's fast path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "The block streams' PCG64 words and transforms in C (same bytes as the NumPy reference; see netspec.init.kernels).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    /* API: the interface version netspec.init.kernels expects (a stale build is not used) */
    if (PyModule_AddIntConstant(m, "API", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#ifdef NETSPEC_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
#endif
    return m;
}

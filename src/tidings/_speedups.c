/*
 * tidings._speedups: the per-record loops of the hot path, in C.
 *
 * The broker's append path checks that the records of every incoming batch
 * tile it exactly (tidings.records.batch.validate_records). In Python that
 * walk costs about 0.2 us a record, which is most of an append of a
 * 1000-record batch; here it costs a few ns. The Python walk stays the
 * reference (and the fallback when this module is not built): a hypothesis
 * test holds the two to the same answers.
 *
 * The producer's side has the mirror image: encoding a batch (records_build)
 * packs a 24-byte prefix per record and copies the key, value and headers
 * behind it, then checksums the result; in Python that is a struct call, a
 * few list appends and a join per record, which dominated `publish_many`.
 * Here it is one pass that sizes the batch and one that fills it, into a
 * single bytes object, with the CRC32C computed by the CPU's crc32
 * instruction where there is one (SSE4.2) and a table otherwise. The Python
 * builder (tidings.records.builder) stays the reference: a hypothesis test
 * holds the two to the same bytes.
 *
 * Record prefix (little-endian, see tidings/records/layout.py):
 *   0 uint32 length, 4 uint32 offset_delta, 8 int32 timestamp_delta,
 *  12 int32 key_length (-1: no key), 16 uint32 value_length, 20 uint32 headers_length
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_HW_CRC 1
#endif

#define PREFIX 24
#define HEADER 64
#define CRC_START 28
#define HEADER_CRC_OFFSET 24
#define MAGIC 1
#define MAX_BATCH 2147483647LL
#define MAX_SPAN 2147483647LL

static inline uint32_t u32le(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* records_tile(buffer, start, end, count, span) -> bool
 *
 * True when `count` records starting at byte `start` of `buffer` end exactly
 * at `end`, record i has offset delta i, a timestamp delta in 0..span and
 * lengths that add up. False on the first fault (the Python walk then says
 * which), and when `end` lies past the buffer.
 */
static PyObject *records_tile(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end;
    unsigned long long count;
    long long span;
    if (!PyArg_ParseTuple(args, "y*nnKL", &view, &start, &end, &count, &span)) {
        return NULL;
    }
    int ok = 0;
    const unsigned char *base = (const unsigned char *)view.buf;
    if (start >= 0 && start <= end && end <= view.len) {
        Py_ssize_t cursor = start;
        unsigned long long index = 0;
        ok = 1;
        for (; index < count; index++) {
            if (end - cursor < PREFIX) { ok = 0; break; }
            const unsigned char *p = base + cursor;
            uint64_t length = u32le(p);
            uint32_t delta = u32le(p + 4);
            int32_t ts_delta = (int32_t)u32le(p + 8);
            int32_t key_len = (int32_t)u32le(p + 12);
            uint64_t value_len = u32le(p + 16);
            uint64_t headers_len = u32le(p + 20);
            if ((unsigned long long)delta != index || ts_delta < 0 || (long long)ts_delta > span || key_len < -1) {
                ok = 0; break;
            }
            uint64_t body = (key_len > 0 ? (uint64_t)key_len : 0) + value_len + headers_len;
            if (length != PREFIX + body || (uint64_t)(end - cursor) < length) { ok = 0; break; }
            cursor += (Py_ssize_t)length;
        }
        if (ok && cursor != end) ok = 0;
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

/* records_headers_over(buffer, start, count, limit) -> int
 *
 * The index of the first of `count` records from byte `start` whose headers
 * section is longer than `limit` bytes, or -1 when there is none. The broker's
 * max_headers_bytes check (tidings.core.limits.check_headers) runs it on every
 * large batch before the produce path validates it, so a malformed batch just
 * ends the walk (-1): records_tile then rejects it with the precise reason.
 */
static PyObject *records_headers_over(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start;
    unsigned long long count;
    unsigned long long limit;
    if (!PyArg_ParseTuple(args, "y*nKK", &view, &start, &count, &limit)) {
        return NULL;
    }
    long long found = -1;
    const unsigned char *base = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    Py_ssize_t cursor = start < 0 ? end : start;
    for (unsigned long long index = 0; index < count; index++) {
        if (end - cursor < PREFIX) break;
        const unsigned char *p = base + cursor;
        uint64_t length = u32le(p);
        if ((uint64_t)u32le(p + 20) > limit) { found = (long long)index; break; }
        if (length < PREFIX || (uint64_t)(end - cursor) < length) break;
        cursor += (Py_ssize_t)length;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(found);
}

/* records_skip(buffer, start, end, count) -> int
 *
 * The byte position of the record `count` records after the one at `start`,
 * walking only the prefixes' lengths; -1 when a record before it does not fit
 * between `start` and `end` (the batch is malformed). A consumer that gets a
 * span from the middle of a stored batch of thousands of records (a
 * subscription that starts at a time, a prefetch smaller than the batch)
 * decodes just that span, after this walk to its first record.
 */
static PyObject *records_skip(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end;
    unsigned long long count;
    if (!PyArg_ParseTuple(args, "y*nnK", &view, &start, &end, &count)) {
        return NULL;
    }
    long long found = -1;
    const unsigned char *base = (const unsigned char *)view.buf;
    if (start >= 0 && start <= end && end <= view.len) {
        Py_ssize_t cursor = start;
        unsigned long long index = 0;
        for (; index < count; index++) {
            if (end - cursor < PREFIX) break;
            uint64_t length = u32le(base + cursor);
            if (length < PREFIX || (uint64_t)(end - cursor) < length) break;
            cursor += (Py_ssize_t)length;
        }
        if (index == count) found = (long long)cursor;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(found);
}

/* ---- CRC32C (Castagnoli), the same function as the `crc32c` package ---- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[k][n] = c;
        }
    }
}

/* Slicing by 8: the fallback where the CPU has no crc32 instruction. */
static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
              crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
              crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#ifdef HAVE_HW_CRC
static int hw_crc = 0;

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
#endif

static uint32_t crc32c(const unsigned char *p, size_t n) {
#ifdef HAVE_HW_CRC
    if (hw_crc) return ~crc_hw(0xFFFFFFFFu, p, n);
#endif
    return ~crc_sw(0xFFFFFFFFu, p, n);
}

/* crc32c(buffer) -> int: exposed so that a test can hold it to the `crc32c` package. */
static PyObject *py_crc32c(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    uint32_t crc;
    Py_BEGIN_ALLOW_THREADS
    crc = crc32c((const unsigned char *)view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

/* ---- encoding a batch ---- */

static inline void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static inline void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* The bytes behind a key, value or headers object: bytes directly, else the buffer protocol. */
typedef struct {
    const char *data;
    Py_ssize_t len;
} Part;

static int part_of(PyObject *obj, Part *out, Py_buffer *held, int *holding) {
    if (PyBytes_Check(obj)) {
        out->data = PyBytes_AS_STRING(obj);
        out->len = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, held, PyBUF_SIMPLE) < 0) return -1;
    *holding = 1;
    out->data = (const char *)held->buf;
    out->len = held->len;
    return 0;
}

/* records_build(records, producer_id, producer_epoch, base_sequence) -> bytes | None
 *
 * `records` is the builder's list of (key | None, value, encoded headers,
 * timestamp ms) tuples. Returns the whole batch, as BatchBuilder.build
 * encodes it (base offset 0, unstamped, both checksums set), or None when
 * the batch breaks a limit of the format (2 GiB, or records more than
 * 2**31 ms apart): the Python builder then raises the error that says so.
 */
static PyObject *records_build(PyObject *self, PyObject *args) {
    PyObject *records;
    long long producer_id, base_sequence;
    int producer_epoch;
    if (!PyArg_ParseTuple(args, "O!LiL", &PyList_Type, &records, &producer_id, &producer_epoch, &base_sequence)) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    if (count < 1) {
        PyErr_SetString(PyExc_ValueError, "records_build needs at least one record");
        return NULL;
    }
    long long first = 0, highest = 0, total = HEADER;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(records, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "records_build: each record is a (key, value, headers, timestamp) tuple");
            return NULL;
        }
        long long stamp = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 3));
        if (stamp == -1 && PyErr_Occurred()) return NULL;
        if (i == 0 || stamp < first) first = stamp;
        if (i == 0 || stamp > highest) highest = stamp;
        Py_ssize_t body = 0;
        for (int f = 0; f < 3; f++) {
            PyObject *obj = PyTuple_GET_ITEM(item, f);
            if (obj == Py_None && f == 0) continue;
            if (PyBytes_Check(obj)) {
                body += PyBytes_GET_SIZE(obj);
            } else {
                Py_buffer view;
                if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) return NULL;
                body += view.len;
                PyBuffer_Release(&view);
            }
        }
        total += PREFIX + (long long)body;
        if (total > MAX_BATCH) Py_RETURN_NONE;
    }
    if (highest - first > MAX_SPAN) Py_RETURN_NONE;

    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL) return NULL;
    unsigned char *buf = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *cursor = buf + HEADER;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(records, i);
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        Part parts[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
        Py_buffer held[3];
        int holding[3] = {0, 0, 0};
        int failed = 0;
        for (int f = 0; f < 3 && !failed; f++) {
            PyObject *obj = PyTuple_GET_ITEM(item, f);
            if (obj == Py_None && f == 0) continue;
            failed = part_of(obj, &parts[f], &held[f], &holding[f]) < 0;
        }
        if (!failed) {
            long long stamp = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 3));
            Py_ssize_t body = parts[0].len + parts[1].len + parts[2].len;
            if (cursor + PREFIX + body > buf + total) {  /* a buffer grew between the passes */
                PyErr_SetString(PyExc_RuntimeError, "records_build: a record changed size while encoding");
                failed = 1;
            } else {
                put32(cursor, (uint32_t)(PREFIX + body));
                put32(cursor + 4, (uint32_t)i);
                put32(cursor + 8, (uint32_t)(int32_t)(stamp - first));
                put32(cursor + 12, key == Py_None ? 0xFFFFFFFFu : (uint32_t)parts[0].len);
                put32(cursor + 16, (uint32_t)parts[1].len);
                put32(cursor + 20, (uint32_t)parts[2].len);
                cursor += PREFIX;
                for (int f = 0; f < 3; f++) {
                    if (parts[f].len) memcpy(cursor, parts[f].data, (size_t)parts[f].len);
                    cursor += parts[f].len;
                }
            }
        }
        for (int f = 0; f < 3; f++) if (holding[f]) PyBuffer_Release(&held[f]);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (cursor != buf + total) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_RuntimeError, "records_build: a record changed size while encoding");
        return NULL;
    }
    /* header: see tidings/records/layout.py */
    put64(buf, 0);                      /* base_offset */
    put64(buf + 8, 0);                  /* append_time */
    put32(buf + 16, (uint32_t)total);   /* length */
    buf[28] = MAGIC;
    buf[29] = 0;                        /* attributes: no compression */
    put32(buf + 30, (uint32_t)count);
    put64(buf + 34, (uint64_t)first);
    put64(buf + 42, (uint64_t)highest);
    put64(buf + 50, (uint64_t)producer_id);
    buf[58] = (unsigned char)(producer_epoch & 0xFF);
    buf[59] = (unsigned char)((producer_epoch >> 8) & 0xFF);
    put32(buf + 60, (uint32_t)(int32_t)base_sequence);
    uint32_t crc;
    Py_BEGIN_ALLOW_THREADS
    crc = crc32c(buf + CRC_START, (size_t)(total - CRC_START));
    Py_END_ALLOW_THREADS
    put32(buf + 20, crc);
    put32(buf + HEADER_CRC_OFFSET, crc32c(buf, HEADER_CRC_OFFSET));
    return out;
}

static PyMethodDef methods[] = {
    {"records_build", records_build, METH_VARARGS,
     "records_build(records, producer_id, producer_epoch, base_sequence) -> bytes | None: encode a batch"},
    {"crc32c", py_crc32c, METH_VARARGS, "crc32c(buffer) -> int: CRC32C (Castagnoli)"},
    {"records_tile", records_tile, METH_VARARGS,
     "records_tile(buffer, start, end, count, span) -> bool: do the records tile the batch?"},
    {"records_headers_over", records_headers_over, METH_VARARGS,
     "records_headers_over(buffer, start, count, limit) -> int: first record with headers over limit, or -1"},
    {"records_skip", records_skip, METH_VARARGS,
     "records_skip(buffer, start, end, count) -> int: position `count` records on, or -1"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tidings._speedups", "The per-record loops of the hot path, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    crc_init();
#ifdef HAVE_HW_CRC
    __builtin_cpu_init();
    hw_crc = __builtin_cpu_supports("sse4.2");
#endif
    return PyModule_Create(&module);
}

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
 * Record prefix (little-endian, see tidings/records/layout.py):
 *   0 uint32 length, 4 uint32 offset_delta, 8 int32 timestamp_delta,
 *  12 int32 key_length (-1: no key), 16 uint32 value_length, 20 uint32 headers_length
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define PREFIX 24

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

static PyMethodDef methods[] = {
    {"records_tile", records_tile, METH_VARARGS,
     "records_tile(buffer, start, end, count, span) -> bool: do the records tile the batch?"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tidings._speedups", "The per-record loops of the hot path, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
